"""rlrec.simulators (see DESIGN.md section 2)."""
