//! LTX-Video transformer parity against the diffusers fixtures (in progress).
