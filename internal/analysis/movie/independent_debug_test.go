package movie_test

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/picoflow/picoflow/internal/analysis/movie"
)

// listTracks logs, for looking at a movie's tracking by hand, the
// detections and true particles around NEAR=frame,x,y (two frames either
// side) and the points of the tracks TRACKS=id,id with the true particle
// nearest each.
func listTracks(t *testing.T, res *movie.Result, truth [][]simParticle) {
	if at := os.Getenv("NEAR"); at != "" { // frame,x,y
		var f int
		var x, y float64
		fmt.Sscanf(at, "%d,%g,%g", &f, &x, &y)
		for g := max(f-2, 0); g <= f+2 && g < len(res.Detections); g++ {
			line := fmt.Sprintf("near f%d:", g)
			for _, d := range res.Detections[g] {
				if math.Hypot(d.X-x, d.Y-y) < 14 {
					line += fmt.Sprintf(" [t%d (%.1f,%.1f) d%.1f e%.2f]", d.Track, d.X, d.Y, d.DiameterPx, d.Elongation)
				}
			}
			line += " | truth:"
			for _, q := range truth[g] {
				if math.Hypot(q.X-x, q.Y-y) < 14 {
					line += fmt.Sprintf(" [p%d (%.1f,%.1f) r%.1f]", q.ID, q.X, q.Y, q.R)
				}
			}
			t.Log(line)
		}
	}
	if tl := os.Getenv("TRACKS"); tl != "" {
		for _, f := range strings.Split(tl, ",") {
			var id int
			fmt.Sscan(f, &id)
			line := fmt.Sprintf("track %d:", id)
			for _, p := range res.Tracks[id].Points {
				near, nd := -1, 1e9
				for _, q := range truth[p.Frame] {
					if d := math.Hypot(q.X-p.X, q.Y-p.Y); d < nd {
						near, nd = q.ID, d
					}
				}
				sh := ""
				if p.Elongation > 0 {
					sh = fmt.Sprintf(" e%.2f", p.Elongation)
				}
				line += fmt.Sprintf("\n   f%d (%.1f,%.1f) d%.1f%s -> p%d@%.1f", p.Frame, p.X, p.Y, p.DiameterPx, sh, near, nd)
			}
			t.Log(line)
		}
	}
}
