// Package command runs the commands a facility configures for flow steps
// of type command: on the server (`picoflow server --command NAME=ARGV`) or
// on a compute endpoint (`picoflow endpoint --command NAME=ARGV`). Flows
// name a command; they never carry a command line, so a server cannot make
// an endpoint run anything its operator did not configure.
//
// A command runs in its own process (group) in an empty output directory,
// with the input file's path in {input} and $PICOFLOW_INPUT. Every regular
// file it leaves there is a product, renamed NAME-FILE; a result.json it
// writes becomes the step's data. A non-zero exit fails the step with the
// tail of its output.
package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/picoflow/picoflow/internal/checksum"
)

// ErrUnknown means no command of that name is configured here.
var ErrUnknown = errors.New("no such command")

// Set is the configured commands by name.
type Set map[string][]string

// Parse reads specs of the form NAME=ARGV, ARGV split like a shell does
// (spaces, 'single' and "double" quotes, backslash escapes), with the
// placeholders {input}, {output}, {name} (the file's name) and {run}.
func Parse(specs []string) (Set, error) {
	s := Set{}
	for _, spec := range specs {
		name, line, ok := strings.Cut(spec, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " /\\\t") {
			return nil, fmt.Errorf("command %q: want NAME=COMMAND LINE", spec)
		}
		argv, err := splitArgs(line)
		if err != nil {
			return nil, fmt.Errorf("command %s: %w", name, err)
		}
		if len(argv) == 0 {
			return nil, fmt.Errorf("command %s: empty command line", name)
		}
		if _, dup := s[name]; dup {
			return nil, fmt.Errorf("command %s: configured twice", name)
		}
		s[name] = argv
	}
	return s, nil
}

// splitArgs splits a command line as a POSIX shell would, without
// expansions.
func splitArgs(line string) ([]string, error) {
	var args []string
	var cur strings.Builder
	in := false // inside a word
	var quote rune
	esc := false
	for _, c := range line {
		switch {
		case esc:
			cur.WriteRune(c)
			esc = false
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case quote == '"':
			switch c {
			case '"':
				quote = 0
			case '\\':
				esc = true
			default:
				cur.WriteRune(c)
			}
		case c == '\\':
			esc, in = true, true
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				args = append(args, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(c)
			in = true
		}
	}
	if quote != 0 || esc {
		return nil, errors.New("unbalanced quote or trailing backslash")
	}
	if in {
		args = append(args, cur.String())
	}
	return args, nil
}

// Names lists the configured commands.
func (s Set) Names() []string {
	var out []string
	for n := range s {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Input is what one run of a command works on.
type Input struct {
	// Path is the input file; OutDir an empty directory for its products.
	Path, OutDir string
	// FileName, RunID and SHA256 describe the file for the command.
	FileName, RunID, SHA256 string
	// Memory, when set, caps the command's address space in bytes
	// (RLIMIT_AS through util-linux prlimit; Linux only). Leave it unset
	// for programs that reserve large virtual ranges (Java, CUDA).
	Memory uint64
}

// Product is a file a command left in its output directory.
type Product struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Result is the outcome of a command that exited 0.
type Result struct {
	Command  string    `json:"command"`
	Seconds  float64   `json:"seconds"`
	Output   string    `json:"output,omitempty"` // the tail of stdout and stderr
	Products []Product `json:"products"`
	// Data is the result.json the command wrote, if any.
	Data json.RawMessage `json:"data,omitempty"`
}

// outputTail is how much of a command's output is kept.
const outputTail = 8 << 10

// Run runs the command name on in. It returns ErrUnknown for a command not
// configured here, and an error with the output's tail when the command
// fails; ctx ending kills the command's whole process group.
func (s Set) Run(ctx context.Context, name string, in Input) (*Result, error) {
	tmpl, ok := s[name]
	if !ok {
		return nil, fmt.Errorf("command %q (configured: %s): %w", name, strings.Join(s.Names(), ", "), ErrUnknown)
	}
	r := strings.NewReplacer("{input}", in.Path, "{output}", in.OutDir, "{name}", in.FileName, "{run}", in.RunID)
	argv := make([]string, len(tmpl))
	for i, a := range tmpl {
		argv[i] = r.Replace(a)
	}
	if in.Memory > 0 {
		if runtime.GOOS != "linux" {
			return nil, fmt.Errorf("command %s: a memory limit needs Linux", name)
		}
		pl, err := exec.LookPath("prlimit")
		if err != nil {
			return nil, fmt.Errorf("command %s: a memory limit needs prlimit (util-linux): %w", name, err)
		}
		argv = append([]string{pl, fmt.Sprintf("--as=%d", in.Memory), "--"}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = in.OutDir
	cmd.Env = append(os.Environ(), "PICOFLOW_INPUT="+in.Path, "PICOFLOW_OUTPUT="+in.OutDir,
		"PICOFLOW_FILE_NAME="+in.FileName, "PICOFLOW_RUN_ID="+in.RunID, "PICOFLOW_SHA256="+in.SHA256)
	tail := &tailBuffer{max: outputTail}
	cmd.Stdout, cmd.Stderr = tail, tail
	ownGroup(cmd)
	cmd.WaitDelay = 5 * time.Second
	t0 := time.Now()
	err := cmd.Run()
	res := &Result{Command: name, Seconds: time.Since(t0).Seconds(), Output: tail.String()}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("command %s: %w", name, ctx.Err())
		}
		return nil, fmt.Errorf("command %s: %w: %s", name, err, strings.TrimSpace(res.Output))
	}
	if err := res.collect(ctx, name, in.OutDir); err != nil {
		return nil, fmt.Errorf("command %s: %w", name, err)
	}
	return res, nil
}

// collect turns the files left in dir into products named name-FILE and
// reads result.json.
func (res *Result) collect(ctx context.Context, name, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	res.Products = []Product{}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if e.Name() == "result.json" {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !json.Valid(b) {
				return errors.New("result.json is not JSON")
			}
			res.Data = json.RawMessage(bytes.TrimSpace(b))
			if err := os.Remove(path); err != nil {
				return err
			}
			continue
		}
		final := e.Name()
		if !strings.HasPrefix(final, name+"-") {
			final = name + "-" + final
			if err := os.Rename(path, filepath.Join(dir, final)); err != nil {
				return err
			}
			path = filepath.Join(dir, final)
		}
		sum, n, err := checksum.File(ctx, path)
		if err != nil {
			return err
		}
		res.Products = append(res.Products, Product{Name: final, Size: n, SHA256: sum})
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
