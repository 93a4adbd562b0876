"""Lightning callbacks: sample grids and other run artifacts."""
