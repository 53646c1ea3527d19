"""rlrec.envs (see DESIGN.md section 2)."""
