// Package logging builds the services' loggers: one line per event, text
// for people or JSON (--log-format json) for log collectors.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/pflag"
)

// Format is the --log-format flag's value: text or json.
type Format string

// String, Set and Type make Format a pflag.Value.
func (f *Format) String() string { return string(*f) }

// Set accepts text or json.
func (f *Format) Set(v string) error {
	switch v {
	case "text", "json":
		*f = Format(v)
		return nil
	}
	return fmt.Errorf("log format %q: want text or json", v)
}

// Type names the flag's type in help.
func (f *Format) Type() string { return "text|json" }

// The format chosen on the command line (default text).
var format Format = "text"

// AddFlag adds --log-format to a command's persistent flags.
func AddFlag(fs *pflag.FlagSet) {
	fs.Var(&format, "log-format", "log lines as text or json (one JSON object per line)")
}

// New returns a logger writing to standard error at level in the chosen
// format.
func New(level slog.Level) *slog.Logger { return NewTo(os.Stderr, format, level) }

// NewTo returns a logger writing to w in format f.
func NewTo(w io.Writer, f Format, level slog.Level) *slog.Logger {
	opt := &slog.HandlerOptions{Level: level}
	if f == "json" {
		return slog.New(slog.NewJSONHandler(w, opt))
	}
	return slog.New(slog.NewTextHandler(w, opt))
}
