package handlers

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// checkJSONText refuses JSON text that encoding/json would read as
// something other than what was sent: bytes that are not UTF-8, and \u
// escapes of a lone UTF-16 surrogate. encoding/json turns both into
// U+FFFD without a word, so a worker's or a user's text would be stored
// altered. b must be valid JSON (it has been decoded).
func checkJSONText(b []byte) error {
	if !utf8.Valid(b) {
		for i := 0; i < len(b); {
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return fmt.Errorf("is not valid UTF-8 (byte %d)", i)
			}
			i += n
		}
	}
	inString := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c != '\\':
		case i+5 < len(b) && b[i+1] == 'u':
			r := hex4(b[i+2 : i+6])
			switch {
			case !utf16.IsSurrogate(r):
			case r < 0xdc00 && i+11 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' && isLowSurrogate(hex4(b[i+8:i+12])):
				i += 6 // the pair's second half
			default:
				return fmt.Errorf("holds \\u%s at byte %d: half of a UTF-16 surrogate pair, which is no character", b[i+2:i+6], i)
			}
			i += 5
		default:
			i++ // \" \\ \/ \b \f \n \r \t
		}
	}
	return nil
}

func isLowSurrogate(r rune) bool { return r >= 0xdc00 && r <= 0xdfff }

// hex4 reads the four hex digits of a \u escape (-1 if they are not).
func hex4(b []byte) rune {
	n, err := strconv.ParseUint(string(b), 16, 16)
	if err != nil {
		return -1
	}
	return rune(n)
}
