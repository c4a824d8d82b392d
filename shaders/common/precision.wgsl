// The element type of activation buffers. Arithmetic accumulates in f32;
// `act` only decides what is stored (f16 halves the bytes moved).
#if F16
enable f16;
alias act = f16;
#else
alias act = f32;
#endif
