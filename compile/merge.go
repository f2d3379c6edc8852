package compile

import "strconv"

// merge folds the spec of the next file of a directory into c: maps
// merge, start and stop lists concatenate, and anything named (pattern,
// stream command, filter) or any setting given by two files is an error
// that names both.
func merge(c, next *configSpec, d *diag) {
	for name, p := range next.patterns {
		if prev, ok := c.patterns[name]; ok {
			d.add(p.at, "pattern %q is defined in both %s and %s", name, where(prev.at), where(p.at))
			continue
		}
		c.patterns[name] = p
	}
	for name, s := range next.streams {
		prev, ok := c.streams[name]
		if !ok {
			c.streams[name] = s
			continue
		}
		// A stream may be spread over files (its filters in several), but
		// its command is given once.
		if s.cmd.set {
			if prev.cmd.set {
				d.add(s.cmd.at, "the command of stream %q is defined in both %s and %s", name, where(prev.cmd.at), where(s.cmd.at))
			} else {
				prev.cmd = s.cmd
			}
		}
		for fname, f := range s.filters {
			if pf, ok := prev.filters[fname]; ok {
				d.add(f.at, "filter %q of stream %q is defined in both %s and %s", fname, name, where(pf.at), where(f.at))
				continue
			}
			prev.filters[fname] = f
		}
		prev.filtersBad = prev.filtersBad || s.filtersBad
	}
	c.streamsBad = c.streamsBad || next.streamsBad
	c.start = append(c.start, next.start...)
	c.stop = append(c.stop, next.stop...)
	mergeOpt(&c.concurrency, next.concurrency, keyConcurrency, d)
	mergeOpt(&c.stateDir, next.stateDir, keyStateDirectory, d)
	mergeOpt(&c.rotation, next.rotation, keyRotationInterval, d)
}

func mergeOpt[T any](dst *opt[T], next opt[T], key string, d *diag) {
	if !next.set {
		return
	}
	if dst.set {
		d.add(next.at, "%s is set in both %s and %s", key, where(dst.at), where(next.at))
		return
	}
	*dst = next
}

func where(l loc) string {
	if l.line > 0 {
		return l.file + ":" + strconv.Itoa(l.line)
	}
	return l.file
}
