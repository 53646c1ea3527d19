"""rlrec.train (see DESIGN.md section 2)."""
