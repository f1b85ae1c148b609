package catalog

import (
	"bytes"
	"strings"
	"unicode"
)

// Term is one free-text search term: a word, or a "quoted phrase" of
// several words in order; Prefix matches words starting with the last one.
type Term struct {
	Words  []string
	Prefix bool
}

// Clause is one part of a search every hit satisfies: one of its terms
// matches (they were joined by OR), or, when Not, none does.
type Clause struct {
	Any []Term
	Not bool
}

// ParseText reads free text as people type it into clauses, which every
// backend ANDs: words and "quoted phrases"; OR between two of them; NOT or
// a leading - before one; a word of four or more letters, or one ending in
// *, also matches longer words (spectr finds spectrum); an element's name
// also finds its symbol (gold finds Au, which the analysis writes). Words
// are runs of letters and digits, lowercased; everything else separates
// them, so no input is a syntax error in a backend's query language.
func ParseText(text string) []Clause {
	var out []Clause
	or, not := false, false
	rest := text
	for rest != "" {
		rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
		if rest == "" {
			break
		}
		var raw string
		phrase := false
		if rest[0] == '"' {
			end := strings.IndexByte(rest[1:], '"')
			raw, rest = rest[1:], ""
			if end >= 0 {
				raw, rest = raw[:end], raw[end+1:]
			}
			phrase = true
		} else {
			end := strings.IndexFunc(rest, unicode.IsSpace)
			if end < 0 {
				end = len(rest)
			}
			raw, rest = rest[:end], rest[end:]
			switch raw {
			case "OR", "|":
				or = len(out) > 0
				continue
			case "NOT":
				not = true
				continue
			case "AND", "&":
				continue
			}
			if strings.HasPrefix(raw, "-") && len(raw) > 1 {
				not, raw = true, raw[1:]
			}
		}
		w := words(raw)
		if len(w) == 0 {
			continue
		}
		terms := []Term{{Words: w}}
		if !phrase {
			last := w[len(w)-1]
			terms[0].Prefix = strings.HasSuffix(raw, "*") || len(w) == 1 && len([]rune(last)) >= 4 && !allDigits(last)
			if len(w) == 1 {
				if sym, ok := ElementSymbol(w[0]); ok && strings.ToLower(sym) != w[0] {
					terms = append(terms, Term{Words: []string{strings.ToLower(sym)}})
				}
			}
		}
		if or && !not && !out[len(out)-1].Not {
			out[len(out)-1].Any = append(out[len(out)-1].Any, terms...)
		} else {
			out = append(out, Clause{Any: terms, Not: not})
		}
		or, not = false, false
	}
	return out
}

func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func allDigits(s string) bool {
	for _, r := range s {
		if !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// CleanText replaces NUL characters, which PostgreSQL cannot store, with
// U+FFFD. Every backend applies it, so all store the same text.
func CleanText(s string) string { return strings.ReplaceAll(s, "\x00", "\uFFFD") }

// CleanJSON does the same inside an encoded JSON document.
func CleanJSON(b []byte) []byte { return bytes.ReplaceAll(b, []byte(`\u0000`), []byte(`\ufffd`)) }
