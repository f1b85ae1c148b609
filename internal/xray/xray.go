// Package xray is the table of characteristic X-ray lines (K, L and M
// families) used to identify elements in EDS spectra and to simulate them.
//
// The table is generated from HyperSpy's line database (go generate), so
// identifications agree with what HyperSpy users see.
package xray

//go:generate sh -c "/usr/bin/python3 gen.py > lines_table.go && gofmt -w lines_table.go"

import (
	"sort"
	"strings"
)

// Line is one characteristic X-ray emission line.
type Line struct {
	Z       int     `json:"z"`
	Element string  `json:"element"`
	Name    string  `json:"line"`   // Siegbahn name: Ka, Kb, La, Lb1, Ma, ...
	Energy  float64 `json:"energy"` // keV
	Weight  float64 `json:"weight"` // relative intensity within the family (1 for the main line)
}

// Family returns the shell family of the line: "K", "L" or "M".
func (l Line) Family() string { return l.Name[:1] }

// Label is "Fe Ka".
func (l Line) Label() string { return l.Element + " " + l.Name }

// Lines returns every line of the table, ordered by Z then name.
func Lines() []Line { return table }

// ElementLines returns the lines of one element (symbol, case-sensitive as
// "Fe"), strongest first.
func ElementLines(symbol string) []Line {
	var out []Line
	for _, l := range table {
		if l.Element == symbol {
			out = append(out, l)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Weight > out[j].Weight })
	return out
}

// Known reports whether symbol is an element of the table.
func Known(symbol string) bool { return len(ElementLines(symbol)) > 0 }

// Normalize turns "fe" or "FE" into "Fe".
func Normalize(symbol string) string {
	s := strings.TrimSpace(symbol)
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + strings.ToLower(s[1:])
}
