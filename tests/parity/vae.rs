//! LTX-Video vae parity against the diffusers fixtures (in progress).
