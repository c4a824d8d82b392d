//! LTX-Video pipeline parity against the diffusers fixtures (in progress).
