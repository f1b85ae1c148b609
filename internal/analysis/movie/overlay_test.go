package movie

import "testing"

// TestOverlays: the annotated frame carries white label pixels at the top
// left and a scale bar of a round length at the bottom left.
func TestOverlays(t *testing.T) {
	aw, ah := 256, 128
	rgb := make([]uint8, aw*ah*3)
	c := Calibration{PixelSize: 0.5, PixelUnits: "nm", FrameTime: 0.1}
	drawOverlays(rgb, aw, ah, 2, 11, 20, c)
	white := func(x0, y0, x1, y1 int) int {
		n := 0
		for y := y0; y < y1; y++ {
			for x := x0; x < x1; x++ {
				i := 3 * (y*aw + x)
				if rgb[i] == 255 && rgb[i+1] == 255 && rgb[i+2] == 255 {
					n++
				}
			}
		}
		return n
	}
	if white(0, 0, aw, 20) < 40 {
		t.Error("no time label at the top")
	}
	px, label := c.scaleBar(aw * 2)
	if px != 100 || label != "50 nm" {
		t.Errorf("scale bar %d px %q, want 100 px (50 nm at 0.5 nm/px of a 256 nm field)", px, label)
	}
	if got := white(6, ah-10, 6+px/2+1, ah-7); got != 3*(px/2+1) {
		t.Errorf("scale bar: %d white pixels, want %d", got, 3*(px/2+1))
	}
	if l := c.frameLabel(11, 20); l != "t = 1.10 s  frame 12/20" {
		t.Errorf("label %q", l)
	}
}
