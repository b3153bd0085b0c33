"""Statistics shared by several stages: pure functions over NumPy arrays (and the scaling
transform, applied back as Ibis expressions). Nothing here reads or writes a table."""
