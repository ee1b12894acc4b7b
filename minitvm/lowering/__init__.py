"""Schedule -> loop IR: loop nests from a schedule, storage flattening, and the pass pipeline per target."""
