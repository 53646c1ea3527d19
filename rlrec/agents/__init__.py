"""rlrec.agents (see DESIGN.md section 2)."""
