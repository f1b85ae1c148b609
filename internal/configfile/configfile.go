// Package configfile reads a service's YAML configuration file into its
// command-line flags: each key is a flag's name (lists for repeatable
// flags), flags given on the command line win, and an unknown key is an
// error naming it.
package configfile

import (
	"fmt"
	"os"
	"sort"

	"github.com/goccy/go-yaml"
	"github.com/spf13/pflag"
)

// Apply sets the flags of fs from the YAML file at path, except those set
// on the command line.
func Apply(fs *pflag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil || k == "config" {
			return fmt.Errorf("config %s: unknown setting %q (settings are the command's flag names)", path, k)
		}
		if f.Changed {
			continue // the command line wins
		}
		vals := []any{m[k]}
		if l, ok := m[k].([]any); ok {
			vals = l
		}
		for _, v := range vals {
			if err := fs.Set(k, fmt.Sprint(v)); err != nil {
				return fmt.Errorf("config %s: %s: %w", path, k, err)
			}
		}
	}
	return nil
}
