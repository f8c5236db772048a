"""Operations: health now; readiness and metrics later."""
