//! (placeholder: owned by the bridge work)
