package hyperspectral

import (
	"errors"
	"math"
)

// nnls solves min ||A x - b||² subject to x ≥ 0 for the columns not in
// free (free columns may take any sign), given the normal equations
// G = AᵀA (m×m, row-major) and h = Aᵀb: the Lawson–Hanson active-set
// method on the normal equations (Bro and De Jong's "fast NNLS").
func nnls(G []float64, h []float64, m int, free []bool) ([]float64, error) {
	x := make([]float64, m)
	passive := make([]bool, m)
	for j := range m {
		if free != nil && free[j] {
			passive[j] = true
		}
	}
	if anyTrue(passive) {
		z, err := solvePassive(G, h, m, passive)
		if err != nil {
			return nil, err
		}
		copy(x, z)
	}
	const tol = 1e-10
	for iter := 0; iter < 3*m+20; iter++ {
		// Gradient w = h - G x; the most positive among active columns enters.
		best, bj := tol*norm(h), -1
		for j := range m {
			if passive[j] {
				continue
			}
			w := h[j]
			for k := range m {
				w -= G[j*m+k] * x[k]
			}
			if w > best {
				best, bj = w, j
			}
		}
		if bj < 0 {
			return x, nil
		}
		passive[bj] = true
		for inner := 0; inner < 3*m+20; inner++ {
			z, err := solvePassive(G, h, m, passive)
			if err != nil {
				return nil, err
			}
			// Constrained columns that went non-positive: step back to the
			// boundary and drop them.
			alpha, neg := 1.0, false
			for j := range m {
				if passive[j] && !(free != nil && free[j]) && z[j] <= 0 {
					neg = true
					if d := x[j] - z[j]; d > 0 {
						alpha = math.Min(alpha, x[j]/d)
					}
				}
			}
			if !neg {
				copy(x, z)
				break
			}
			for j := range m {
				if passive[j] {
					x[j] += alpha * (z[j] - x[j])
				}
				if passive[j] && !(free != nil && free[j]) && x[j] <= tol {
					passive[j], x[j] = false, 0
				}
			}
		}
	}
	return x, nil
}

func anyTrue(v []bool) bool {
	for _, b := range v {
		if b {
			return true
		}
	}
	return false
}

func norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

// solvePassive solves G_PP z_P = h_P (zeros elsewhere) by Cholesky.
func solvePassive(G, h []float64, m int, passive []bool) ([]float64, error) {
	var idx []int
	for j := range m {
		if passive[j] {
			idx = append(idx, j)
		}
	}
	n := len(idx)
	a := make([]float64, n*n)
	b := make([]float64, n)
	for r, i := range idx {
		b[r] = h[i]
		for c, j := range idx {
			a[r*n+c] = G[i*m+j]
		}
	}
	sol, err := cholSolve(a, b, n)
	if err != nil {
		return nil, err
	}
	z := make([]float64, m)
	for r, i := range idx {
		z[i] = sol[r]
	}
	return z, nil
}

var errSingular = errors.New("singular normal equations")

// cholesky factors the symmetric positive definite a (n×n) in place into
// L (lower triangle), with a small ridge where a pivot is not positive.
func cholesky(a []float64, n int) error {
	for j := range n {
		d := a[j*n+j]
		for k := range j {
			d -= a[j*n+k] * a[j*n+k]
		}
		if d <= 1e-12*math.Max(math.Abs(a[j*n+j]), 1e-300) {
			d = math.Max(1e-12*math.Abs(a[j*n+j]), 1e-300)
		}
		if math.IsNaN(d) {
			return errSingular
		}
		l := math.Sqrt(d)
		a[j*n+j] = l
		for i := j + 1; i < n; i++ {
			s := a[i*n+j]
			for k := range j {
				s -= a[i*n+k] * a[j*n+k]
			}
			a[i*n+j] = s / l
		}
	}
	return nil
}

func cholSolve(a, b []float64, n int) ([]float64, error) {
	if err := cholesky(a, n); err != nil {
		return nil, err
	}
	return substitute(a, b, n), nil
}

// substitute solves L Lᵀ y = b for the Cholesky factor L (lower triangle
// of l): forward, then back substitution.
func substitute(l, b []float64, n int) []float64 {
	y := make([]float64, n)
	for i := range n {
		s := b[i]
		for k := range i {
			s -= l[i*n+k] * y[k]
		}
		y[i] = s / l[i*n+i]
	}
	for i := n - 1; i >= 0; i-- {
		s := y[i]
		for k := i + 1; k < n; k++ {
			s -= l[k*n+i] * y[k]
		}
		y[i] = s / l[i*n+i]
	}
	return y
}

// invertSPD returns the inverse of the symmetric positive definite a.
func invertSPD(a []float64, n int) ([]float64, error) {
	l := append([]float64(nil), a...)
	if err := cholesky(l, n); err != nil {
		return nil, err
	}
	inv := make([]float64, n*n)
	e := make([]float64, n)
	for c := range n {
		clear(e)
		e[c] = 1
		for i, v := range substitute(l, e, n) {
			inv[i*n+c] = v
		}
	}
	return inv, nil
}
