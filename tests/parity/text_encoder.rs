//! LTX-Video text_encoder parity against the diffusers fixtures (in progress).
