package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/picoflow/picoflow/internal/upload"
)

// Sidecar describes one acquisition in a small YAML or JSON file beside the
// data file: for si_0001.emd, si_0001.yaml (.yml, .json) or
// si_0001.emd.yaml. Its fields override the folder's settings. Write it
// before, or together with, the data file.
type Sidecar struct {
	Proposal    string   `yaml:"proposal" json:"proposal"`
	Sample      string   `yaml:"sample" json:"sample"`
	Operator    string   `yaml:"operator" json:"operator"`
	Description string   `yaml:"description" json:"description"`
	Keywords    []string `yaml:"keywords" json:"keywords"`
	License     string   `yaml:"license" json:"license"`
	// DerivedFrom names the raw data this file was made from: a file in
	// the same folder (the agent sends its SHA-256) or a SHA-256.
	DerivedFrom string `yaml:"derived_from" json:"derived_from"`
}

// Bounds of a sidecar's fields, so that metadata stays metadata.
const (
	maxSidecarBytes = 64 << 10
	maxField        = 200
	maxDescription  = 4000
	maxKeywords     = 32
)

// SidecarNames are the files a data file's sidecar may be, in the order
// they are looked for.
func SidecarNames(path string) []string {
	stem := strings.TrimSuffix(path, filepath.Ext(path))
	return []string{stem + ".yaml", stem + ".yml", stem + ".json", path + ".yaml", path + ".yml", path + ".json"}
}

// ReadSidecar reads a data file's sidecar; none is not an error. A sidecar
// that cannot be read or is malformed is an error (and is ignored).
func ReadSidecar(path string) (Sidecar, error) {
	var sc Sidecar
	for _, name := range SidecarNames(path) {
		fi, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return sc, fmt.Errorf("sidecar %s: %w", name, err)
		}
		if fi.Size() > maxSidecarBytes {
			return sc, fmt.Errorf("sidecar %s: %d bytes, more than %d", name, fi.Size(), maxSidecarBytes)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return sc, fmt.Errorf("sidecar %s: %w", name, err)
		}
		if strings.HasSuffix(name, ".json") {
			err = json.Unmarshal(b, &sc)
		} else {
			err = yaml.Unmarshal(b, &sc)
		}
		if err != nil {
			return Sidecar{}, fmt.Errorf("sidecar %s: %w", name, err)
		}
		return sc.bounded(), nil
	}
	return sc, nil
}

func (sc Sidecar) bounded() Sidecar {
	cut := func(s string, n int) string {
		s = strings.TrimSpace(s)
		if r := []rune(s); len(r) > n {
			return string(r[:n])
		}
		return s
	}
	sc.Proposal, sc.Sample, sc.Operator, sc.License = cut(sc.Proposal, maxField), cut(sc.Sample, maxField), cut(sc.Operator, maxField), cut(sc.License, maxField)
	sc.DerivedFrom = cut(sc.DerivedFrom, maxField)
	sc.Description = cut(sc.Description, maxDescription)
	var kw []string
	for _, k := range sc.Keywords {
		if k = cut(strings.ReplaceAll(k, ",", " "), maxField); k != "" && len(kw) < maxKeywords {
			kw = append(kw, k)
		}
	}
	sc.Keywords = kw
	return sc
}

// Meta is the sidecar as upload metadata (only the fields it sets).
func (sc Sidecar) Meta() map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{upload.MetaProposal: sc.Proposal, upload.MetaSample: sc.Sample, upload.MetaOperator: sc.Operator,
		upload.MetaDescription: sc.Description, upload.MetaKeywords: strings.Join(sc.Keywords, ","), upload.MetaLicense: sc.License} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}
