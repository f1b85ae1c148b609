package movie

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/picoflow/picoflow/internal/chart"
)

// Calibration says what a movie's pixels and frames measure, for the
// overlays and plots: PixelSize in PixelUnits (nm) and FrameTime in seconds
// (zero when unknown).
type Calibration struct {
	PixelSize  float64
	PixelUnits string
	FrameTime  float64
}

// frameLabel is the text burnt into an annotated frame: its time and number.
func (c Calibration) frameLabel(t, n int) string {
	if c.FrameTime > 0 {
		return fmt.Sprintf("t = %.2f s  frame %d/%d", float64(t)*c.FrameTime, t+1, n)
	}
	return fmt.Sprintf("frame %d/%d", t+1, n)
}

// scaleBar is a round length (1, 2 or 5 × 10^n) near a fifth of a field w
// pixels wide, in pixels, with its label; 0 when the pixel size is unknown.
func (c Calibration) scaleBar(w int) (px int, label string) {
	if c.PixelSize <= 0 || c.PixelUnits == "" || w <= 0 {
		return 0, ""
	}
	n, label := chart.RoundLength(c.PixelSize*float64(w)/5, c.PixelUnits)
	return int(math.Round(n / c.PixelSize)), label
}

// drawText writes white text with a dark outline into a packed RGB frame
// of aw×ah at (x, y) (the baseline's left end).
func drawText(rgb []uint8, aw, ah, x, y int, s string) {
	face := basicfont.Face7x13
	w := font.MeasureString(face, s).Ceil()
	mask := image.NewAlpha(image.Rect(0, 0, w+2, 15))
	d := font.Drawer{Dst: mask, Src: image.NewUniform(color.Alpha{255}), Face: face, Dot: fixed.P(1, 12)}
	d.DrawString(s)
	b := mask.Bounds()
	// Outline first (every neighbour of a glyph pixel), then the glyph.
	for pass := range 2 {
		for my := b.Min.Y; my < b.Max.Y; my++ {
			for mx := b.Min.X; mx < b.Max.X; mx++ {
				if mask.AlphaAt(mx, my).A < 128 {
					continue
				}
				if pass == 1 {
					put(rgb, aw, ah, x+mx, y-12+my, [3]uint8{255, 255, 255})
					continue
				}
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						put(rgb, aw, ah, x+mx+dx, y-12+my+dy, [3]uint8{0, 0, 0})
					}
				}
			}
		}
	}
}

// drawOverlays burns the time/frame label (top left) and the scale bar
// (bottom left) into an annotated frame; step is its downsampling.
func drawOverlays(rgb []uint8, aw, ah, step, t, n int, c Calibration) {
	label := c.frameLabel(t, n)
	if font.MeasureString(basicfont.Face7x13, label).Ceil() > aw-12 {
		// A small frame: the time, or the frame number, alone.
		label = fmt.Sprintf("#%d", t+1)
		if c.FrameTime > 0 {
			label = fmt.Sprintf("%.2f s", float64(t)*c.FrameTime)
		}
	}
	if font.MeasureString(basicfont.Face7x13, label).Ceil() <= aw-12 {
		drawText(rgb, aw, ah, 6, 16, label)
	}
	px, label := c.scaleBar(aw * step)
	if px <= 0 {
		return
	}
	bw := max(1, px/step)
	y0 := ah - 10
	for y := y0 - 1; y <= y0+3; y++ {
		for x := 5; x <= 7+bw; x++ {
			put(rgb, aw, ah, x, y, [3]uint8{0, 0, 0})
		}
	}
	for y := y0; y <= y0+2; y++ {
		for x := 6; x <= 6+bw; x++ {
			put(rgb, aw, ah, x, y, [3]uint8{255, 255, 255})
		}
	}
	drawText(rgb, aw, ah, 6, y0-4, label)
}
