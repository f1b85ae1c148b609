package movie

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/picoflow/picoflow/internal/chart"
)

// What scientists publish from a movie of nanoparticles: per particle and
// frame its projected area, equivalent diameter and integrated intensity
// (tracks.csv), calibrated when the pixel size and frame time are known;
// the size distribution over time (sizes.png), the growth of the largest
// particles (growth.png), the number density, and the list of merges,
// nucleations and dissolutions (events.csv).

// Stats are the movie's measurements, calibrated where the calibration
// is known (Units says in what; "px" and frames otherwise).
type Stats struct {
	Units string `json:"units"`
	// MeanDiameter and MedianDiameter over every particle of every frame.
	MeanDiameter   float64 `json:"mean_diameter"`
	MedianDiameter float64 `json:"median_diameter"`
	// Density is the mean number of particles per square micrometre (0
	// without a length calibration), DensityPerMPx per million pixels.
	Density       float64 `json:"density_per_um2,omitempty"`
	DensityPerMPx float64 `json:"density_per_mpx"`
	Merges        int     `json:"merges"`
	Nucleations   int     `json:"nucleations"`
	Dissolutions  int     `json:"dissolutions"`
}

// lengthScale converts pixels to the calibrated unit (1 and "px" when
// unknown).
func (c Calibration) lengthScale() (float64, string) {
	if c.PixelSize > 0 && c.PixelUnits != "" {
		return c.PixelSize, c.PixelUnits
	}
	return 1, "px"
}

// micrometres is the length of one unit in µm (0 when not a length).
func micrometres(units string) float64 {
	return map[string]float64{"m": 1e6, "mm": 1e3, "um": 1, "µm": 1, "nm": 1e-3, "pm": 1e-6, "Å": 1e-4, "A": 1e-4}[units]
}

func (r *Result) measure(cal Calibration) Stats {
	k, units := cal.lengthScale()
	st := Stats{Units: units}
	var ds []float64
	for _, dets := range r.Detections {
		for _, d := range dets {
			if d.DiameterPx > 0 {
				ds = append(ds, d.DiameterPx*k)
			}
		}
	}
	if len(ds) > 0 {
		st.MedianDiameter = median(ds)
		for _, d := range ds {
			st.MeanDiameter += d
		}
		st.MeanDiameter /= float64(len(ds))
	}
	area := float64(r.Width * r.Height)
	st.DensityPerMPx = r.MeanCount() / area * 1e6
	if um := micrometres(units); um > 0 {
		st.Density = r.MeanCount() / (area * k * k * um * um)
	}
	for _, e := range r.Events {
		switch e.Type {
		case "merge":
			st.Merges++
		case "nucleation":
			st.Nucleations++
		case "dissolution":
			st.Dissolutions++
		}
	}
	return st
}

// timeOf is the time of frame in seconds as a CSV field ("" when the
// frame time is not known).
func (c Calibration) timeOf(frame int) string {
	if c.FrameTime <= 0 {
		return ""
	}
	return fmt.Sprintf("%.4f", float64(frame)*c.FrameTime)
}

// writeCSV writes a file through a buffer.
func writeCSV(path string, fill func(w *bufio.Writer)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	fill(bw)
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeTracks(dir string, res *Result, cal Calibration) error {
	k, units := cal.lengthScale()
	err := writeCSV(filepath.Join(dir, "tracks.csv"), func(bw *bufio.Writer) {
		fmt.Fprintf(bw, "track,frame,x_px,y_px,w_px,h_px,score,area_px,diameter_px,intensity,snr,time_s,area_%s2,diameter_%s,elongation\n", units, units)
		for _, dets := range res.Detections {
			for _, d := range dets {
				fmt.Fprintf(bw, "%d,%d,%.2f,%.2f,%.2f,%.2f,%.3f,%.0f,%.2f,%.4g,%.1f,%s,%.4g,%.4g,%.2f\n", d.Track, d.Frame, d.X, d.Y, d.W, d.H, d.Score,
					d.AreaPx, d.DiameterPx, d.Intensity, d.SNR, cal.timeOf(d.Frame), d.AreaPx*k*k, d.DiameterPx*k, d.Elongation)
			}
		}
	})
	if err != nil {
		return err
	}
	b, err := json.Marshal(struct {
		Frames int      `json:"frames"`
		Counts []int    `json:"counts"`
		Tracks []*Track `json:"tracks"`
		Events []Event  `json:"events"`
		Stats  Stats    `json:"stats"`
	}{res.Frames, res.Counts, res.Tracks, res.Events, res.Stats})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "tracks.json"), b, 0o644)
}

func writeEvents(path string, events []Event, cal Calibration) error {
	k, units := cal.lengthScale()
	return writeCSV(path, func(bw *bufio.Writer) {
		fmt.Fprintf(bw, "type,frame,time_s,track,gone_track,x_%s,y_%s\n", units, units)
		for _, e := range events {
			fmt.Fprintf(bw, "%s,%d,%s,%d,%d,%.4g,%.4g\n", e.Type, e.Frame, cal.timeOf(e.Frame), e.Into, e.Gone, e.X*k, e.Y*k)
		}
	})
}

// timeAxis is the plots' time axis: seconds when the frame time is known.
func timeAxis(p *plot.Plot, cal Calibration, frames int) float64 {
	if cal.FrameTime > 0 {
		p.X.Label.Text = fmt.Sprintf("time (s; %d frames, %.3g s each)", frames, cal.FrameTime)
		return cal.FrameTime
	}
	p.X.Label.Text = "frame"
	return 1
}

// sizeGrid is the size distribution over time: particles counted by time
// column and diameter row.
type sizeGrid struct {
	counts     [][]float64 // [column][row]
	x0, dx     float64
	y0, dy     float64
	cols, rows int
}

func (g *sizeGrid) Dims() (c, r int)        { return g.cols, g.rows }
func (g *sizeGrid) Z(c, r int) float64      { return g.counts[c][r] }
func (g *sizeGrid) X(c int) float64         { return g.x0 + (float64(c)+0.5)*g.dx }
func (g *sizeGrid) Y(r int) float64         { return g.y0 + (float64(r)+0.5)*g.dy }
func (g *sizeGrid) add(c, r int, v float64) { g.counts[c][r] += v }

// writeSizes draws the size distribution over time: a column per span of
// frames, the share of that span's particles in each diameter bin.
func writeSizes(path string, res *Result, cal Calibration) error {
	k, units := cal.lengthScale()
	var ds []float64
	for _, dets := range res.Detections {
		for _, d := range dets {
			ds = append(ds, d.DiameterPx*k)
		}
	}
	p := plot.New()
	p.Title.Text = "Particle size distribution over time (colour: share of each column's particles)"
	tk := timeAxis(p, cal, res.Frames)
	p.Y.Label.Text = fmt.Sprintf("equivalent diameter (%s)", units)
	if len(ds) > 0 {
		slices.Sort(ds)
		top := ds[min(len(ds)-1, int(0.995*float64(len(ds))))] * 1.05
		cols := min(res.Frames, 100)
		per := float64(res.Frames) / float64(cols)
		const rows = 24
		g := &sizeGrid{cols: cols, rows: rows, x0: 0, dx: per * tk, y0: 0, dy: top / rows}
		g.counts = make([][]float64, cols)
		for c := range g.counts {
			g.counts[c] = make([]float64, g.rows)
		}
		totals := make([]float64, cols)
		for f, dets := range res.Detections {
			c := min(cols-1, int(float64(f)/per))
			for _, d := range dets {
				r := int(d.DiameterPx * k / g.dy)
				if r >= 0 && r < g.rows {
					g.add(c, r, 1)
				}
				totals[c]++
			}
		}
		var most float64
		for c := range g.counts {
			for r := range g.counts[c] {
				if totals[c] > 0 {
					g.counts[c][r] /= totals[c]
				}
				most = max(most, g.counts[c][r])
			}
		}
		pal := chart.Viridis()
		pal.SetMin(0)
		pal.SetMax(max(most, 1e-9))
		hm := plotter.NewHeatMap(g, pal.Palette(64))
		hm.Min, hm.Max = 0, max(most, 1e-9)
		hm.Rasterized = true // no seams between the cells
		p.Add(hm)
		p.X.Min, p.X.Max = 0, float64(res.Frames)*tk
		p.Y.Min, p.Y.Max = 0, top
		p.Y.Tick.Marker = stepTicks{}
		p.X.Tick.Marker = stepTicks{}
		p.Title.Text += fmt.Sprintf(", yellow = %.0f %%", 100*most)
	}
	if err := p.Save(8*vg.Inch, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("movie: size distribution: %w", err)
	}
	return nil
}

// writeGrowth draws the equivalent diameter over time of the largest
// particles followed through much of the movie (a running median over 5
// frames).
func writeGrowth(path string, res *Result, cal Calibration) error {
	k, units := cal.lengthScale()
	p := plot.New()
	p.Title.Text = "Growth of the largest particles"
	tk := timeAxis(p, cal, res.Frames)
	p.Y.Label.Text = fmt.Sprintf("equivalent diameter (%s)", units)
	type cand struct {
		t    *Track
		size float64
	}
	var cs []cand
	for _, t := range res.Tracks {
		if len(t.Points) < max(5, res.Frames/4) {
			continue
		}
		var d []float64
		for _, pt := range t.Points {
			d = append(d, pt.DiameterPx)
		}
		cs = append(cs, cand{t, median(d)})
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if a.size != b.size {
			return map[bool]int{true: -1, false: 1}[a.size > b.size]
		}
		return a.t.ID - b.t.ID
	})
	palette := []color.NRGBA{{47, 95, 179, 255}, {214, 96, 77, 255}, {90, 174, 97, 255}, {153, 112, 171, 255}, {224, 130, 20, 255}, {64, 64, 64, 255}}
	for i, c := range cs[:min(len(cs), len(palette))] {
		pts := make(plotter.XYs, len(c.t.Points))
		for j, pt := range c.t.Points {
			lo, hi := max(0, j-2), min(len(c.t.Points), j+3)
			var win []float64
			for _, q := range c.t.Points[lo:hi] {
				win = append(win, q.DiameterPx)
			}
			pts[j].X, pts[j].Y = float64(pt.Frame)*tk, median(win)*k
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = palette[i]
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("track %d", c.t.ID), line)
	}
	p.Add(plotter.NewGrid())
	// Sizes from zero (growth in proportion); the legend in the empty
	// lower part.
	p.Y.Min, p.Y.Max = 0, p.Y.Max*1.05
	p.Legend.Top, p.Legend.Left = false, true
	p.Y.Tick.Marker = stepTicks{}
	p.X.Tick.Marker = stepTicks{}
	if err := p.Save(8*vg.Inch, 3.5*vg.Inch, path); err != nil {
		return fmt.Errorf("movie: growth plot: %w", err)
	}
	return nil
}

// stepTicks marks an axis every round step (1, 2 or 5 × 10^n), about five
// labels over its range.
type stepTicks struct{}

func (stepTicks) Ticks(lo, hi float64) []plot.Tick {
	step, _ := chart.RoundLength((hi-lo)/4, "")
	if !(step > 0) {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	var ts []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 4, 64)})
	}
	return ts
}
