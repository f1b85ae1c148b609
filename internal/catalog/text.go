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

// ParseText splits user text into terms, which every backend ANDs. Words
// are runs of letters and digits, lowercased; everything else separates
// them, so no input can be a syntax error in a backend's query language.
func ParseText(text string) []Term {
	var terms []Term
	words := func(s string) []string {
		return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	}
	rest := text
	for rest != "" {
		rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
		if rest == "" {
			break
		}
		if rest[0] == '"' {
			end := strings.IndexByte(rest[1:], '"')
			phrase := rest[1:]
			if end >= 0 {
				phrase, rest = rest[1:1+end], rest[2+end:]
			} else {
				rest = ""
			}
			if w := words(phrase); len(w) > 0 {
				terms = append(terms, Term{Words: w})
			}
			continue
		}
		end := strings.IndexFunc(rest, unicode.IsSpace)
		if end < 0 {
			end = len(rest)
		}
		w, prefix := rest[:end], strings.HasSuffix(rest[:end], "*")
		rest = rest[end:]
		for _, part := range words(w) {
			terms = append(terms, Term{Words: []string{part}, Prefix: prefix})
		}
	}
	return terms
}

// CleanText replaces NUL characters, which PostgreSQL cannot store, with
// U+FFFD. Every backend applies it, so all store the same text.
func CleanText(s string) string { return strings.ReplaceAll(s, "\x00", "\uFFFD") }

// CleanJSON does the same inside an encoded JSON document.
func CleanJSON(b []byte) []byte { return bytes.ReplaceAll(b, []byte(`\u0000`), []byte(`\ufffd`)) }
