package movie

// WithAxis returns d with what the classical detector measures of its
// outline's long axis: the variance of its pixels along it, and its
// direction (ax, ay).
func WithAxis(d Detection, long, ax, ay float64) Detection {
	d.long, d.ax, d.ay = long, ax, ay
	return d
}
