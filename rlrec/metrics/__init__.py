"""rlrec.metrics (see DESIGN.md section 2)."""
