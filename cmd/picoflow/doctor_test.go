package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestDoctor: with ffmpeg on PATH its H.264 encoder is checked; without it,
// doctor says how to install it; ONNX Runtime is found through
// ONNXRUNTIME_LIB.
func TestDoctor(t *testing.T) {
	find := func(cs []check, need string) check {
		for _, c := range cs {
			if c.Need == need {
				return c
			}
		}
		t.Fatalf("no check of %s", need)
		return check{}
	}
	cs := doctorChecks(context.Background(), t.TempDir(), "")
	if c := find(cs, "ffmpeg's H.264 encoder (libx264)"); !c.OK {
		t.Errorf("ffmpeg (installed by the test set-up): %+v", c)
	}
	if c := find(cs, "free disk in --data (1 GiB at least)"); !c.OK || !strings.Contains(c.Detail, "GB free") {
		t.Errorf("disk: %+v", c)
	}
	t.Setenv("PATH", t.TempDir())
	t.Setenv("ONNXRUNTIME_LIB", "/nonexistent/libonnxruntime.so")
	cs = doctorChecks(context.Background(), t.TempDir(), "")
	if c := find(cs, "ffmpeg"); c.OK || !strings.Contains(c.Fix, "apt-get install ffmpeg") {
		t.Errorf("without ffmpeg: %+v", c)
	}
	if c := find(cs, "ONNX Runtime (ONNXRUNTIME_LIB)"); c.OK {
		t.Errorf("a missing ONNX Runtime library: %+v", c)
	}
	var out bytes.Buffer
	if n := printChecks(&out, cs); n != 0 || !strings.Contains(out.String(), "absent") || !strings.Contains(out.String(), "fix: apt-get install ffmpeg") {
		t.Errorf("%d required missing; output:\n%s", n, out.String())
	}
}
