// Package flow runs durable flows: a flow is a named list of steps declared in
// YAML (transfer -> analyze -> publish -> notify); a run is one flow applied
// to one file, identified by the file's SHA-256 so a file is never processed
// twice by the same flow. Each step runs as a River job; a finishing step
// records its timing and enqueues the next step in the same transaction, so
// runs advance on completion events rather than by polling, and survive
// crashes (steps are retried, and must be idempotent).
package flow

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// Errors.
var (
	// ErrNotFound means no such run or flow.
	ErrNotFound = errors.New("not found")
	// ErrPermanent marks a step error that retrying cannot fix (bad input).
	// Step functions wrap it; the run then fails at once.
	ErrPermanent = errors.New("permanent failure")
	// ErrConfig means a flow definition is invalid.
	ErrConfig = errors.New("invalid flow configuration")
)

// Permanent marks err as permanent (errors.Is(err, ErrPermanent)) without
// changing its message.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// Run and step states.
const (
	StateQueued    = "queued"
	StateRunning   = "running"
	StateRetrying  = "retrying"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StatePending   = "pending" // a step not reached yet
	StateWaiting   = "waiting" // a step whose work runs elsewhere (Wait)
)

// Duration is a time.Duration written as "90s" or "10m" in YAML.
type Duration time.Duration

// UnmarshalText parses a duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes a duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Config is the flows section of the server configuration.
type Config struct {
	Flows []Definition `yaml:"flows" json:"flows"`
	// src is the YAML the flows were read from, to name lines in errors.
	src []byte
}

// Line returns the line of the YAML source at path ("$.flows[0].steps[2]
// .params"), or 0 when unknown (flows not read from YAML).
func (c *Config) Line(path string) int {
	if len(c.src) == 0 {
		return 0
	}
	p, err := yaml.PathString(path)
	if err != nil {
		return 0
	}
	f, err := parser.ParseBytes(c.src, 0)
	if err != nil {
		return 0
	}
	n, err := p.FilterFile(f)
	if err != nil || n == nil || n.GetToken() == nil {
		return 0
	}
	return n.GetToken().Position.Line
}

// CheckParams asks each step's type to check the step's parameters (a
// step type's Check) and names the flow, step and YAML line of the first
// bad one.
func (c *Config) CheckParams(check map[string]func(params map[string]any) error) error {
	for i, f := range c.Flows {
		for j, s := range f.Steps {
			fn := check[s.Type]
			if fn == nil {
				continue
			}
			if err := fn(s.Params); err != nil {
				path := fmt.Sprintf("$.flows[%d].steps[%d].params", i, j)
				where := ""
				if n := c.Line(path); n > 0 {
					where = fmt.Sprintf("line %d: ", n)
				}
				return fmt.Errorf("%w: %sflow %s, step %s: params: %w", ErrConfig, where, f.Name, s.Name, err)
			}
		}
	}
	return nil
}

// Definition declares one flow.
type Definition struct {
	// Name identifies the flow ("hyperspectral"); agents name it per folder.
	Name        string    `yaml:"name" json:"name"`
	Description string    `yaml:"description" json:"description"`
	Steps       []StepDef `yaml:"steps" json:"steps"`
}

// StepDef declares one step of a flow.
type StepDef struct {
	// Name is unique within the flow ("analyze").
	Name string `yaml:"name" json:"name"`
	// Type selects the step implementation (transfer, analyze, publish,
	// notify, command).
	Type string `yaml:"type" json:"type"`
	// Timeout bounds one attempt (default 10m).
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// Attempts is the number of tries before the run fails (default 3).
	Attempts int `yaml:"attempts" json:"attempts"`
	// Params are passed to the step type (e.g. visible_to for publish).
	Params map[string]any `yaml:"params" json:"params,omitempty"`
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultConfig returns the built-in flows.
func DefaultConfig() Config {
	c, err := ParseConfig(defaultYAML)
	if err != nil {
		panic(err)
	}
	return c
}

// Merge returns the flows of over and those of base that over does not
// redefine (by name).
func Merge(base, over Config) Config {
	// over's flows first: their indexes stay those of its YAML, so errors
	// name the right lines.
	out := Config{src: over.src, Flows: append([]Definition(nil), over.Flows...)}
	for _, f := range base.Flows {
		if _, ok := over.Flow(f.Name); !ok {
			out.Flows = append(out.Flows, f)
		}
	}
	return out
}

// LoadConfig reads a flow configuration file.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("load flows: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("load flows %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses and validates YAML; unknown keys are errors.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b), yaml.DisallowUnknownField())
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.src = b
	return c, c.Validate(nil)
}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// Validate checks names and applies defaults; types, when given, lists the
// known step types.
func (c *Config) Validate(types map[string]bool) error {
	seen := map[string]bool{}
	for i := range c.Flows {
		f := &c.Flows[i]
		if !nameRe.MatchString(f.Name) {
			return fmt.Errorf("%w: flows[%d].name %q: use lowercase letters, digits, - and _", ErrConfig, i, f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("%w: flows[%d].name %q is declared twice", ErrConfig, i, f.Name)
		}
		seen[f.Name] = true
		if len(f.Steps) == 0 {
			return fmt.Errorf("%w: flows[%d] (%s) has no steps", ErrConfig, i, f.Name)
		}
		steps := map[string]bool{}
		for j := range f.Steps {
			s := &f.Steps[j]
			if !nameRe.MatchString(s.Name) || steps[s.Name] {
				return fmt.Errorf("%w: flows[%d].steps[%d].name %q is invalid or repeated", ErrConfig, i, j, s.Name)
			}
			steps[s.Name] = true
			if s.Type == "" {
				s.Type = s.Name
			}
			if types != nil && !types[s.Type] {
				return fmt.Errorf("%w: flows[%d].steps[%d].type %q is not a known step type", ErrConfig, i, j, s.Type)
			}
			if s.Timeout <= 0 {
				s.Timeout = Duration(10 * time.Minute)
			}
			if s.Attempts <= 0 {
				s.Attempts = 3
			}
		}
	}
	return nil
}

// Flow returns the definition named name.
func (c *Config) Flow(name string) (*Definition, bool) {
	for i := range c.Flows {
		if c.Flows[i].Name == name {
			return &c.Flows[i], true
		}
	}
	return nil, false
}

// Run is one flow applied to one file.
type Run struct {
	ID         string         `json:"id"`
	Flow       string         `json:"flow"`
	SHA256     string         `json:"sha256"`
	FileName   string         `json:"file_name"`
	Size       int64          `json:"size"`
	Agent      string         `json:"agent,omitempty"`
	Instrument string         `json:"instrument,omitempty"`
	UploadID   string         `json:"upload_id,omitempty"`
	StoredPath string         `json:"stored_path,omitempty"`
	State      string         `json:"state"`
	Created    time.Time      `json:"created"`
	Updated    time.Time      `json:"updated"`
	Finished   *time.Time     `json:"finished,omitempty"`
	Error      string         `json:"error,omitempty"`
	RecordID   string         `json:"record_id,omitempty"`
	Meta       map[string]any `json:"meta,omitempty"`
	// RerunKey is empty for a run its upload started; a run that analyses
	// stored content again (a re-analysis) has a key, one run per key.
	RerunKey string `json:"rerun_key,omitempty"`
	Steps    []Step `json:"steps,omitempty"`
}

// Terminal reports whether the run has finished.
func (r *Run) Terminal() bool { return r.State == StateSucceeded || r.State == StateFailed }

// Step is the state of one step of a run.
type Step struct {
	Index    int           `json:"index"`
	Name     string        `json:"name"`
	Type     string        `json:"type"`
	State    string        `json:"state"`
	Attempts int           `json:"attempts"`
	Ready    *time.Time    `json:"ready,omitempty"`
	Started  *time.Time    `json:"started,omitempty"`
	Finished *time.Time    `json:"finished,omitempty"`
	Active   time.Duration `json:"active_ns"`
	Error    string        `json:"error,omitempty"`
	Output   []byte        `json:"-"`
}
