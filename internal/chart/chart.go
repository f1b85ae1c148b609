package chart

import (
	"fmt"
	xdraw "golang.org/x/image/draw"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Calib is the calibration of one image axis: coordinate(i) = Offset + i*Scale.
type Calib struct {
	Scale, Offset float64
	Units         string
}

// MapSpec describes a 2-D map to draw.
type MapSpec struct {
	Title string
	// Data holds NY*NX values, row-major, row 0 at the top.
	Data   []float64
	NY, NX int
	X, Y   Calib
	// Label names the quantity of the colour bar ("X-ray counts").
	Label string
	// Colors defaults to Viridis.
	Colors *Ramp
	// Clip is the percentile range used for the colour scale, e.g. 0.5 and
	// 99.5; zero values mean min and max.
	ClipLow, ClipHigh float64
	// ScaleBar draws a scale bar on the data (images in length units).
	ScaleBar bool
}

// Map renders a calibrated 2-D map with a colour bar as PNG.
func Map(w io.Writer, s MapSpec) error {
	if s.NY <= 0 || s.NX <= 0 || len(s.Data) != s.NY*s.NX {
		return fmt.Errorf("chart: map %q: %d values for %d×%d", s.Title, len(s.Data), s.NY, s.NX)
	}
	cm := s.Colors
	if cm == nil {
		cm = Viridis()
	}
	lo, hi := percentiles(s.Data, s.ClipLow, s.ClipHigh)
	if hi <= lo {
		hi = lo + 1
	}
	cm.SetMin(lo)
	cm.SetMax(hi)
	img := image.NewNRGBA(image.Rect(0, 0, s.NX, s.NY))
	for i, v := range s.Data {
		img.Pix[i*4], img.Pix[i*4+1], img.Pix[i*4+2], img.Pix[i*4+3] = unpack(cm.NRGBA(v))
	}

	bar := plot.New()
	bar.HideX()
	bar.Y.Label.Text = s.Label
	bar.Y.Tick.Marker = niceTicks{}
	cb := &plotter.ColorBar{ColorMap: cm, Vertical: true}
	bar.Add(cb)

	// The map on the left, the colour bar beside it (never over it).
	const barWidth = 1.2 * vg.Inch
	p, c, dc, left := mapLayout(s.Title, s.NX, s.NY, s.X, s.Y, barWidth)
	right := dc
	right.Min.X = left.Max.X + 0.1*vg.Inch
	right.Max.X = right.Min.X + barWidth - 0.1*vg.Inch
	da := p.DataCanvas(left)
	right.Min.Y, right.Max.Y = da.Min.Y, da.Max.Y // the bar as tall as the data
	p.Draw(left)
	bar.Draw(right)
	drawRaster(c, da, img)
	if s.ScaleBar {
		drawScaleBar(da, nonzero(s.X.Scale)*float64(s.NX), s.X.Units)
	}
	return encodePNG(w, c)
}

// drawScaleBar draws a bar of a round length (1, 2 or 5 × 10^n units, about
// a fifth of the field of view) in the lower left of the data area, white
// on a dark box so it reads on any image.
func drawScaleBar(da draw.Canvas, fieldWidth float64, units string) {
	if units == "" || fieldWidth <= 0 {
		return
	}
	length, label := RoundLength(math.Abs(fieldWidth)/5, units)
	frac := length / math.Abs(fieldWidth)
	w := (da.Max.X - da.Min.X) * vg.Length(frac)
	pad := 6 * vg.Length(1)
	x0, y0 := da.Min.X+2*pad, da.Min.Y+2*pad
	sty := draw.TextStyle{Color: color.White, Font: font.From(plot.DefaultFont, vg.Points(9)), Handler: plot.DefaultTextHandler, XAlign: draw.XCenter, YAlign: draw.YBottom}
	textH := sty.Height(label)
	box := vg.Rectangle{Min: vg.Point{X: x0 - pad, Y: y0 - pad}, Max: vg.Point{X: x0 + w + pad, Y: y0 + 3 + textH + pad + 2}}
	da.SetColor(color.NRGBA{0, 0, 0, 150})
	da.Fill(box.Path())
	da.SetColor(color.White)
	da.Fill(vg.Rectangle{Min: vg.Point{X: x0, Y: y0}, Max: vg.Point{X: x0 + w, Y: y0 + 3}}.Path())
	da.FillText(sty, vg.Point{X: x0 + w/2, Y: y0 + 5}, label)
}

// RoundLength is the largest 1, 2 or 5 × 10^n below v, with its label:
// a scale bar's length. Nanometres of 1000 and more become micrometres.
func RoundLength(v float64, units string) (float64, string) {
	exp := math.Floor(math.Log10(v))
	base := math.Pow(10, exp)
	n := base
	for _, m := range []float64{5, 2, 1} {
		if m*base <= v {
			n = m * base
			break
		}
	}
	shown, u := n, units
	if (units == "nm" || units == "1/nm") && n >= 1000 {
		shown, u = n/1000, map[string]string{"nm": "µm", "1/nm": "1/µm"}[units]
	}
	return n, trimFloat(shown) + " " + u
}

// niceTicks are gonum's default ticks with their labels written as short as
// the value allows (250, not 250.00).
type niceTicks struct{}

func (niceTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = trimFloat(ts[i].Value)
		}
	}
	return ts
}

// mapLayout makes the calibrated axes of an nx×ny raster (row 0 at the top:
// y grows downwards) on a figure of the common size, keeping side free on
// the right for a colour bar or legend. It returns the plot, the canvas,
// the whole figure and the plot's area, narrowed so the pixels come out
// square; the caller draws the plot there, then the raster.
func mapLayout(title string, nx, ny int, x, y Calib, side vg.Length) (*plot.Plot, *vgimg.Canvas, draw.Canvas, draw.Canvas) {
	xs, ys := nonzero(x.Scale), nonzero(y.Scale)
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = axisLabel("x", x.Units)
	p.Y.Label.Text = axisLabel("y", y.Units)
	p.Y.Tick.Marker = negTicks{}
	p.X.Tick.Marker = niceTicks{}
	p.X.Min, p.X.Max = x.Offset, x.Offset+xs*float64(nx)
	p.Y.Min, p.Y.Max = -(y.Offset + ys*float64(ny)), -y.Offset
	const width, height = 7 * vg.Inch, 5.6 * vg.Inch
	c := vgimg.New(width, height)
	dc := draw.New(c)
	area := dc
	area.Max.X = dc.Max.X - side
	return p, c, dc, fitAspect(p, area, math.Abs(xs*float64(nx))/math.Abs(ys*float64(ny)))
}

// fitAspect shrinks area so the plot's data area has width/height ratio
// (the field of view's: its pixels come out square), keeping the area's
// top left corner and centring it horizontally. The axes' margins do not
// depend on the area's size, so measuring once and correcting twice is
// exact.
func fitAspect(p *plot.Plot, area draw.Canvas, ratio float64) draw.Canvas {
	if ratio <= 0 || math.IsNaN(ratio) || math.IsInf(ratio, 0) {
		return area
	}
	for range 2 {
		da := p.DataCanvas(area)
		dw, dh := float64(da.Max.X-da.Min.X), float64(da.Max.Y-da.Min.Y)
		if dw <= 0 || dh <= 0 {
			return area
		}
		if dw/dh > ratio {
			cut := vg.Length(dw - dh*ratio)
			area.Min.X += cut / 2
			area.Max.X -= cut / 2
		} else {
			area.Min.Y += vg.Length(dh - dw/ratio) // keep the top
		}
	}
	return area
}

// drawRaster paints img over the data area of a plot, each map pixel a
// block of canvas pixels (nearest neighbour: a map shows its pixels, not a
// blur, and the scaling costs a fraction of a smoothing kernel's).
func drawRaster(c *vgimg.Canvas, da draw.Canvas, img image.Image) {
	dst, ok := c.Image().(xdraw.Image)
	if !ok {
		return
	}
	px := func(l vg.Length) float64 { return float64(l) * c.DPI() / 72 }
	h := float64(dst.Bounds().Dy())
	r := image.Rect(int(math.Round(px(da.Min.X))), int(math.Round(h-px(da.Max.Y))), int(math.Round(px(da.Max.X))), int(math.Round(h-px(da.Min.Y))))
	xdraw.NearestNeighbor.Scale(dst, r, img, img.Bounds(), xdraw.Over, nil)
}

// encodePNG writes a canvas as PNG with fast compression: plots are mostly
// flat colour, so the best-compression setting costs several times the CPU
// for a few per cent of size.
func encodePNG(w io.Writer, c *vgimg.Canvas) error {
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(w, c.Image()); err != nil {
		return fmt.Errorf("chart: encode png: %w", err)
	}
	return nil
}

func unpack(c color.NRGBA) (uint8, uint8, uint8, uint8) { return c.R, c.G, c.B, c.A }

func nonzero(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	return v
}

func axisLabel(name, units string) string {
	if units == "" {
		return name
	}
	return name + " (" + units + ")"
}

// negTicks labels a negated axis with positive values (y grows downwards).
type negTicks struct{}

func (negTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = trimFloat(-ts[i].Value)
		}
	}
	return ts
}

func trimFloat(v float64) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("%g", math.Round(v*1e6)/1e6)
}

// percentiles returns the p-th and q-th percentiles of v (0 and 100 give
// min and max).
func percentiles(v []float64, p, q float64) (float64, float64) {
	if p == 0 && q == 0 {
		q = 100
	}
	s := make([]float64, 0, len(v))
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return 0, 1
	}
	sort.Float64s(s)
	at := func(pc float64) float64 {
		i := int(math.Round(pc / 100 * float64(len(s)-1)))
		return s[max(0, min(len(s)-1, i))]
	}
	return at(p), at(q)
}

// Marker labels an energy on a spectrum plot.
type Marker struct {
	Energy float64
	Label  string
}

// SpectrumSpec describes a spectrum plot.
type SpectrumSpec struct {
	Title   string
	Energy  []float64 // keV, one per channel
	Counts  []float64
	Markers []Marker
	// MaxEnergy limits the x axis (keV); zero shows every channel.
	MaxEnergy float64
}

// Spectrum renders a spectrum with a logarithmic counts axis as PNG.
func Spectrum(w io.Writer, s SpectrumSpec) error {
	if len(s.Energy) != len(s.Counts) || len(s.Counts) < 2 {
		return fmt.Errorf("chart: spectrum %q: %d energies for %d counts", s.Title, len(s.Energy), len(s.Counts))
	}
	pts := make(plotter.XYs, 0, len(s.Counts))
	peak := 1.0
	for i, c := range s.Counts {
		e := s.Energy[i]
		if e < 0 || (s.MaxEnergy > 0 && e > s.MaxEnergy) {
			continue
		}
		// Log scale: show empty channels at 0.5 counts, below the first decade.
		pts = append(pts, plotter.XY{X: e, Y: math.Max(c, 0.5)})
		peak = math.Max(peak, c)
	}
	if len(pts) < 2 {
		return fmt.Errorf("chart: spectrum %q: fewer than 2 channels in range", s.Title)
	}
	p := plot.New()
	p.Title.Text = s.Title
	p.X.Label.Text = "Energy (keV)"
	p.Y.Label.Text = "Counts (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0.5, peak*3*16 // room for three rows of labels
	p.X.Min, p.X.Max = pts[0].X, pts[len(pts)-1].X
	line, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("chart: spectrum %q: %w", s.Title, err)
	}
	line.Color = color.NRGBA{31, 119, 180, 255}
	line.Width = vg.Points(0.8)
	p.Add(plotter.NewGrid(), line)
	var lbl plotter.XYLabels
	markers := slices.Clone(s.Markers)
	sort.Slice(markers, func(a, b int) bool { return markers[a].Energy < markers[b].Energy })
	// Labels closer than about a label's height along the axis are raised
	// in turn (three heights), so none is drawn over another.
	minGap := (p.X.Max - p.X.Min) * 0.022
	lastAt := map[int]float64{}
	for _, m := range markers {
		if m.Energy < p.X.Min || m.Energy > p.X.Max {
			continue
		}
		level := 0
		for l := 0; l < 3; l++ {
			if at, ok := lastAt[l]; !ok || m.Energy-at >= minGap {
				level = l
				break
			}
			level = (l + 1) % 3
		}
		lastAt[level] = m.Energy
		v, err := plotter.NewLine(plotter.XYs{{X: m.Energy, Y: 0.5}, {X: m.Energy, Y: peak * 1.5}})
		if err != nil {
			return err
		}
		v.Color = color.NRGBA{214, 39, 40, 200}
		v.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
		p.Add(v)
		lbl.XYs = append(lbl.XYs, plotter.XY{X: m.Energy, Y: peak * 1.6 * math.Pow(4, float64(level))})
		lbl.Labels = append(lbl.Labels, m.Label)
	}
	if len(lbl.Labels) > 0 {
		l, err := plotter.NewLabels(lbl)
		if err != nil {
			return err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].Rotation = math.Pi / 2
			l.TextStyle[i].XAlign = draw.XLeft
			l.TextStyle[i].YAlign = draw.YCenter
			l.TextStyle[i].Color = color.NRGBA{150, 20, 20, 255}
		}
		p.Add(l)
	}
	c := vgimg.New(9*vg.Inch, 4.5*vg.Inch)
	p.Draw(draw.New(c))
	return encodePNG(w, c)
}

// Channel is one element map of an overlay, drawn in one colour.
type Channel struct {
	Name  string
	Data  []float64
	Color color.NRGBA
}

// OverlaySpec describes a colour overlay of up to three maps of one grid.
type OverlaySpec struct {
	Title    string
	Channels []Channel
	NY, NX   int
	X, Y     Calib
	// ClipHigh is the percentile that saturates each channel (default 99.5).
	ClipHigh float64
}

// Overlay renders maps added in their colours (each scaled from 0 to its
// ClipHigh percentile) over black, with a legend beside the data instead of
// a colour bar: the composite EDS users look at first.
func Overlay(w io.Writer, s OverlaySpec) error {
	if s.NY <= 0 || s.NX <= 0 || len(s.Channels) == 0 || len(s.Channels) > 3 {
		return fmt.Errorf("chart: overlay %q: %d channels of %d×%d", s.Title, len(s.Channels), s.NY, s.NX)
	}
	clip := s.ClipHigh
	if clip == 0 {
		clip = 99.5
	}
	acc := make([][3]float64, s.NY*s.NX)
	for _, ch := range s.Channels {
		if len(ch.Data) != s.NY*s.NX {
			return fmt.Errorf("chart: overlay %q: channel %s has %d values for %d×%d", s.Title, ch.Name, len(ch.Data), s.NY, s.NX)
		}
		_, hi := percentiles(ch.Data, 0, clip)
		if hi <= 0 {
			hi = 1
		}
		for i, v := range ch.Data {
			f := math.Min(math.Max(v, 0)/hi, 1)
			acc[i][0] += f * float64(ch.Color.R)
			acc[i][1] += f * float64(ch.Color.G)
			acc[i][2] += f * float64(ch.Color.B)
		}
	}
	img := image.NewNRGBA(image.Rect(0, 0, s.NX, s.NY))
	for i, a := range acc {
		img.Pix[i*4], img.Pix[i*4+1], img.Pix[i*4+2], img.Pix[i*4+3] = uint8(math.Min(a[0], 255)), uint8(math.Min(a[1], 255)), uint8(math.Min(a[2], 255)), 255
	}
	const legendWidth = 1.2 * vg.Inch
	p, c, dc, left := mapLayout(s.Title, s.NX, s.NY, s.X, s.Y, legendWidth)
	p.Draw(left)
	drawRaster(c, p.DataCanvas(left), img)
	// The legend: a swatch and the element per channel.
	sty := draw.TextStyle{Color: color.Black, Font: font.From(plot.DefaultFont, vg.Points(12)), Handler: plot.DefaultTextHandler, XAlign: draw.XLeft, YAlign: draw.YCenter}
	x := left.Max.X + 0.2*vg.Inch
	y := dc.Max.Y - 0.9*vg.Inch
	for _, ch := range s.Channels {
		dc.SetColor(ch.Color)
		dc.Fill(vg.Rectangle{Min: vg.Point{X: x, Y: y - 6}, Max: vg.Point{X: x + 14, Y: y + 6}}.Path())
		dc.FillText(sty, vg.Point{X: x + 20, Y: y}, ch.Name)
		y -= 0.3 * vg.Inch
	}
	return encodePNG(w, c)
}
