package configfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestApply: keys set their flags (lists repeat a flag), flags given on
// the command line win, unknown keys are named.
func TestApply(t *testing.T) {
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	data := fs.String("data", "picoflow-data", "")
	addr := fs.String("addr", "127.0.0.1:8470", "")
	expiry := fs.Duration("upload-expiry", time.Hour, "")
	cmds := fs.StringArray("command", nil, "")
	public := fs.Bool("public", false, "")
	if err := fs.Parse([]string{"--addr", "0.0.0.0:9000"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "server.yaml")
	os.WriteFile(path, []byte("data: /srv/picoflow\naddr: 10.0.0.1:1\nupload-expiry: 72h\npublic: true\ncommand:\n  - a=sh -c 'x'\n  - b=true\n"), 0o644)
	if err := Apply(fs, path); err != nil {
		t.Fatal(err)
	}
	if *data != "/srv/picoflow" || *addr != "0.0.0.0:9000" || *expiry != 72*time.Hour || !*public || len(*cmds) != 2 || (*cmds)[0] != "a=sh -c 'x'" {
		t.Errorf("data %q addr %q expiry %v public %v commands %q", *data, *addr, *expiry, *public, *cmds)
	}
	os.WriteFile(path, []byte("dta: /srv\n"), 0o644)
	if err := Apply(fs, path); err == nil || !strings.Contains(err.Error(), `unknown setting "dta"`) {
		t.Errorf("a misspelt key: %v", err)
	}
}
