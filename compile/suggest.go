package compile

import "strings"

// suggest returns the candidate closest to word, for a "did you mean"
// hint, or "" when none is close: at most two edits away (insertions,
// deletions, substitutions, transpositions), or one a prefix of the
// other. Ties go to the earliest candidate, so callers pass sorted lists.
func suggest(word string, candidates []string) string {
	best, bestDist := "", 3
	lw := strings.ToLower(word)
	for _, c := range candidates {
		lc := strings.ToLower(c)
		d := editDistance(lw, lc)
		if d > 2 && lw != "" && (strings.HasPrefix(lc, lw) || strings.HasPrefix(lw, lc)) {
			d = 2
		}
		// Two edits on a two-letter word can turn anything into anything.
		if d >= len(lw) && d >= len(lc) {
			continue
		}
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b
// (Levenshtein plus adjacent transpositions), counted in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows are enough: the current one, and two back for transpositions.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
