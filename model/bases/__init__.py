"""The six multi-scenario base models. Each maps ``x [B, D_in]`` and ``scenario [B]`` to
one representation per scenario slot, ``[B, n_slots, out_dim]`` (slot 0 = search,
1 = rec, 2 = global when USR's GLMT adds it)."""
