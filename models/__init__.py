"""Each model as pure JAX functions (`init`, `apply`) beside its scalar twin on microjax."""
