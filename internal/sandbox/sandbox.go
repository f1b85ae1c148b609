// Package sandbox runs a registered function in a child process of the
// current executable, under a memory limit and a deadline, so that a hostile
// input that makes a library allocate without bound or crash takes down the
// child only. The parent gets a classified error and keeps running.
//
// A program builds one Registry in main (and in TestMain), registers its
// worker functions, calls Registry.Main first thing, and calls Registry.Run to
// execute one in a child.
package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Errors the parent sees when the child did not return normally.
var (
	// ErrCrashed means the child process died without a result.
	ErrCrashed = errors.New("worker process crashed")
	// ErrOutOfMemory means the child exceeded its memory limit.
	ErrOutOfMemory = errors.New("worker process ran out of memory")
	// ErrUnknown means no function of that name is registered.
	ErrUnknown = errors.New("unknown sandbox function")
)

// Func is a function that can run in a child: it gets the JSON request and
// returns a value that is sent back as JSON.
type Func func(ctx context.Context, req json.RawMessage) (any, error)

const (
	envFunc   = "PICOFLOW_SANDBOX_FUNC"
	envMemory = "PICOFLOW_SANDBOX_MEMORY"
)

// Registry holds the functions a program can run in children and the
// sentinel errors that cross the process boundary. Build it before use;
// it is safe for concurrent Run calls afterwards.
type Registry struct {
	mu       sync.RWMutex
	funcs    map[string]Func
	sentinel map[string]error
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{funcs: map[string]Func{}, sentinel: map[string]error{}}
}

// Register makes fn runnable under name. It panics on a duplicate name.
func (g *Registry) Register(name string, fn Func) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.funcs[name]; dup {
		panic("sandbox: duplicate function " + name)
	}
	g.funcs[name] = fn
}

// RegisterError lets an error cross the process boundary: a child error
// that wraps err is returned to the parent wrapping err too, so errors.Is
// keeps working.
func (g *Registry) RegisterError(name string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sentinel[name] = err
}

// Limits bound a child.
type Limits struct {
	// Memory is the child's address-space limit in bytes (0: 8 GiB). Only
	// enforced where the OS has RLIMIT_AS (Linux, macOS).
	Memory uint64
	// Timeout bounds the child's run (0: none beyond ctx).
	Timeout time.Duration
}

// DefaultMemory is the memory limit when Limits.Memory is 0.
const DefaultMemory = 8 << 30

type response struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	Kinds  []string        `json:"kinds,omitempty"`
}

// Run executes the registered function name in a child process with req as
// its input and decodes its result into resp (which may be nil).
func (g *Registry) Run(ctx context.Context, name string, req, resp any, lim Limits) error {
	g.mu.RLock()
	_, ok := g.funcs[name]
	g.mu.RUnlock()
	if !ok {
		return fmt.Errorf("sandbox: %w %q", ErrUnknown, name)
	}
	in, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("sandbox: encode request: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if lim.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, lim.Timeout)
		defer cancel()
	}
	mem := lim.Memory
	if mem == 0 {
		mem = DefaultMemory
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), envFunc+"="+name, fmt.Sprintf("%s=%d", envMemory, mem))
	cmd.Stdin = bytes.NewReader(in)
	var stdout bytes.Buffer
	stderr := &headBuffer{max: 8 << 10}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	cmd.WaitDelay = 5 * time.Second
	dieWithParent(cmd)
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("sandbox %s: %w", name, ctx.Err())
	}
	var r response
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil || (r.Result == nil && r.Error == "") {
		tail := strings.TrimSpace(stderr.String())
		if isOOM(tail) {
			return fmt.Errorf("sandbox %s: %w (limit %d MiB)", name, ErrOutOfMemory, mem>>20)
		}
		return fmt.Errorf("sandbox %s: %w: %v: %s", name, ErrCrashed, runErr, lastLines(tail, 6))
	}
	if r.Error != "" {
		return childError{msg: r.Error, errs: g.sentinels(r.Kinds)}
	}
	if resp != nil {
		if err := json.Unmarshal(r.Result, resp); err != nil {
			return fmt.Errorf("sandbox %s: decode result: %w", name, err)
		}
	}
	return nil
}

func (g *Registry) sentinels(kinds []string) []error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var out []error
	for _, k := range kinds {
		if s, ok := g.sentinel[k]; ok {
			out = append(out, s)
		}
	}
	return out
}

// childError carries a child's error message and the registered sentinels
// it wrapped.
type childError struct {
	msg  string
	errs []error
}

func (e childError) Error() string   { return e.msg }
func (e childError) Unwrap() []error { return e.errs }

func isOOM(stderr string) bool {
	return strings.Contains(stderr, "out of memory") || strings.Contains(stderr, "cannot allocate memory")
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[:n] // the first lines of a Go crash name the cause
	}
	return strings.Join(lines, " | ")
}

// Main runs the registered function when the process was started by Run,
// then exits; otherwise it returns at once. Call it first in main and in
// TestMain.
func (g *Registry) Main() {
	name := os.Getenv(envFunc)
	if name == "" {
		return
	}
	os.Exit(g.serve(name))
}

func (g *Registry) serve(name string) int {
	g.mu.RLock()
	fn, ok := g.funcs[name]
	g.mu.RUnlock()
	if !ok {
		fmt.Fprintf(os.Stderr, "sandbox: %v %q\n", ErrUnknown, name)
		return 2
	}
	var mem uint64
	fmt.Sscan(os.Getenv(envMemory), &mem)
	if mem > 0 {
		if err := limitMemory(mem); err != nil {
			fmt.Fprintf(os.Stderr, "sandbox: memory limit: %v\n", err)
		}
		// Collect garbage hard well before the hard limit.
		debug.SetMemoryLimit(int64(mem / 2))
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sandbox: read request: %v\n", err)
		return 2
	}
	var r response
	res, err := fn(context.Background(), in)
	if err != nil {
		r.Error = err.Error()
		g.mu.RLock()
		for k, s := range g.sentinel {
			if errors.Is(err, s) {
				r.Kinds = append(r.Kinds, k)
			}
		}
		g.mu.RUnlock()
	} else if r.Result, err = json.Marshal(res); err != nil {
		r.Error = fmt.Sprintf("sandbox: encode result: %v", err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return 2
	}
	return 0
}

// headBuffer keeps the first max bytes written (a Go crash report starts
// with its cause).
type headBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *headBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := t.max - len(t.buf); room > 0 {
		t.buf = append(t.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (t *headBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
