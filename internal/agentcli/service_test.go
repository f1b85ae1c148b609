package agentcli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestServiceConfig: the service runs `run --config` with the absolute path
// of a configuration that loads; a missing or broken one is refused at
// install time, not when the service starts.
func TestServiceConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "agent.yaml")
	os.WriteFile(good, []byte("server: https://picoflow.example.org:8470\nfolders:\n  - path: D:\\Velox\n    flow: hyperspectral\n"), 0o644)
	t.Chdir(dir)
	c, err := serviceConfig("agent.yaml", true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Arguments, []string{"run", "--config", good}) || c.Name != "picoflow-agent" || c.Option["UserService"] != true {
		t.Errorf("service config %+v", c)
	}
	if _, err := serviceConfig("", false); err == nil || !strings.Contains(err.Error(), "--config is required") {
		t.Errorf("no config: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("sever: x\n"), 0o644)
	if _, err := serviceConfig(bad, false); err == nil || !strings.Contains(err.Error(), "sever") {
		t.Errorf("a misspelt key: %v", err)
	}
}
