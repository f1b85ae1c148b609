package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestJSON: --log-format json gives one JSON object per line.
func TestJSON(t *testing.T) {
	var b bytes.Buffer
	var f Format
	if err := f.Set("json"); err != nil {
		t.Fatal(err)
	}
	NewTo(&b, f, slog.LevelInfo).Info("run started", "run_id", "r1", "file", "a b.emd")
	var m map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(b.String())), &m); err != nil || m["msg"] != "run started" || m["file"] != "a b.emd" {
		t.Errorf("%q: %v", b.String(), err)
	}
	if err := f.Set("xml"); err == nil {
		t.Error("xml accepted")
	}
}
