package movie_test

import (
	"math"
	"math/rand/v2"
	"testing"
)

// minCostAssignment solves the rectangular assignment problem (the
// Hungarian method, in the shortest augmenting path form of Jonker and
// Volgenant): it returns, for each row of cost, the column assigned to it
// such that no column is used twice and the sum of the costs is least.
// Rows beyond the number of columns get -1.
func minCostAssignment(cost [][]float64) []int {
	n := len(cost)
	if n == 0 {
		return nil
	}
	m := len(cost[0])
	size := max(n, m) // square, padded with zero costs
	at := func(i, j int) float64 {
		if i < n && j < m {
			return cost[i][j]
		}
		return 0
	}
	u, v := make([]float64, size+1), make([]float64, size+1)
	p, way := make([]int, size+1), make([]int, size+1) // p[j]: the row (1-based) on column j
	minv, used := make([]float64, size+1), make([]bool, size+1)
	for i := 1; i <= size; i++ {
		p[0] = i
		j0 := 0
		for j := range minv {
			minv[j], used[j] = math.Inf(1), false
		}
		for {
			used[j0] = true
			i0, delta, j1 := p[j0], math.Inf(1), 0
			for j := 1; j <= size; j++ {
				if used[j] {
					continue
				}
				if cur := at(i0-1, j-1) - u[i0] - v[j]; cur < minv[j] {
					minv[j], way[j] = cur, j0
				}
				if minv[j] < delta {
					delta, j1 = minv[j], j
				}
			}
			for j := 0; j <= size; j++ {
				if used[j] {
					u[p[j]] += delta
					v[j] -= delta
				} else {
					minv[j] -= delta
				}
			}
			j0 = j1
			if p[j0] == 0 {
				break
			}
		}
		for j0 != 0 {
			j1 := way[j0]
			p[j0] = p[j1]
			j0 = j1
		}
	}
	rows := make([]int, n)
	for i := range rows {
		rows[i] = -1
	}
	for j := 1; j <= size; j++ {
		if i := p[j] - 1; i < n && j-1 < m {
			rows[i] = j - 1
		}
	}
	return rows
}

// TestMinCostAssignment checks the assignment against every assignment of
// small random problems, square and not, with forbidden (costly) pairs.
func TestMinCostAssignment(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 500 {
		n, m := 1+rng.IntN(5), 1+rng.IntN(5)
		cost := make([][]float64, n)
		for i := range cost {
			cost[i] = make([]float64, m)
			for j := range cost[i] {
				cost[i][j] = rng.Float64() * 10
				if rng.IntN(3) == 0 {
					cost[i][j] = 1e6
				}
			}
		}
		got := minCostAssignment(cost)
		sum, cols := 0.0, map[int]bool{}
		for i, j := range got {
			if j < 0 {
				continue
			}
			if cols[j] {
				t.Fatalf("trial %d: column %d used twice: %v", trial, j, got)
			}
			cols[j] = true
			sum += cost[i][j]
		}
		if want := min(n, m); len(cols) != want {
			t.Fatalf("trial %d: %d pairs, want %d", trial, len(cols), want)
		}
		if best := bestAssignment(cost, 0, map[int]bool{}); math.Abs(sum-best) > 1e-6 {
			t.Fatalf("trial %d: cost %.4f, the best is %.4f (%v)", trial, sum, best, cost)
		}
	}
}

// bestAssignment is the least cost over every assignment of rows i.. to
// free columns (each row takes a column while there are columns left).
func bestAssignment(cost [][]float64, i int, taken map[int]bool) float64 {
	if i == len(cost) {
		return 0
	}
	left := len(cost) - i
	free := len(cost[0]) - len(taken)
	best := math.Inf(1)
	if left > free { // this row may go without
		best = bestAssignment(cost, i+1, taken)
	}
	for j := range cost[0] {
		if taken[j] {
			continue
		}
		taken[j] = true
		best = min(best, cost[i][j]+bestAssignment(cost, i+1, taken))
		delete(taken, j)
	}
	return best
}
