package nutsstore

import (
	"errors"
	"slices"

	"github.com/nutsdb/nutsdb"

	"reaction/stages"
)

// plan is a batch of changes reduced to its effect on each record, so that
// a flood of matches of one key costs one Put.
type plan struct {
	matches map[string]*matchPlan
	pending map[string]*pendingPlan
	drops   map[stages.FilterRef]bool
	keys    []string // match keys then pending keys, in first-seen order
}

type matchPlan struct {
	filter stages.FilterRef
	clear  bool   // the persisted times are gone
	times  []byte // times to append
}

type pendingPlan struct {
	filter  stages.FilterRef
	put     bool // else delete
	trigger []byte
}

func planChanges(changes []stages.Change) *plan {
	p := &plan{matches: map[string]*matchPlan{}, pending: map[string]*pendingPlan{}}
	var buf []byte
	for i := range changes {
		c := &changes[i]
		switch c.Op {
		case stages.OpMatch, stages.OpClear:
			buf = appendMatchKey(buf[:0], c)
			m := p.matches[string(buf)]
			if m == nil {
				m = &matchPlan{filter: c.Filter, clear: p.drops[c.Filter]}
				k := string(buf)
				p.matches[k] = m
				p.keys = append(p.keys, k)
			}
			if c.Op == stages.OpClear {
				m.clear, m.times = true, m.times[:0]
			} else {
				m.times = appendTime(m.times, c.Time)
			}
		case stages.OpPending, stages.OpDone:
			buf = appendPendingKey(buf[:0], c)
			q := p.pending[string(buf)]
			if q == nil {
				q = &pendingPlan{filter: c.Filter}
				k := string(buf)
				p.pending[k] = q
				p.keys = append(p.keys, k)
			}
			q.put = c.Op == stages.OpPending
			q.trigger = appendTime(q.trigger[:0], c.Time)
		case stages.OpDrop:
			if p.drops == nil {
				p.drops = map[stages.FilterRef]bool{}
			}
			p.drops[c.Filter] = true
			for _, m := range p.matches {
				if m.filter == c.Filter {
					m.clear, m.times = true, m.times[:0]
				}
			}
			for _, q := range p.pending {
				if q.filter == c.Filter {
					q.put = false
				}
			}
		}
	}
	return p
}

func notFound(err error) bool {
	return errors.Is(err, nutsdb.ErrKeyNotFound) || errors.Is(err, nutsdb.ErrNotFoundKey)
}

func deleteIfAny(tx *nutsdb.Tx, bucket string, key []byte) error {
	if err := tx.Delete(bucket, key); err != nil && !notFound(err) {
		return err
	}
	return nil
}

// apply writes the plan in tx.
func (p *plan) apply(tx *nutsdb.Tx) error {
	// Dropped filters: delete their persisted records that the plan does
	// not rewrite anyway.
	var prefix []byte
	for f := range p.drops {
		prefix = appendFilter(prefix[:0], f)
		for _, b := range []string{bucketMatches, bucketPending} {
			keys, _, err := tx.PrefixScanEntries(b, prefix, "", 0, nutsdb.ScanNoLimit, true, false)
			if errors.Is(err, nutsdb.ErrPrefixScan) {
				continue // none
			}
			if err != nil {
				return err
			}
			for _, k := range keys {
				_, inMatches := p.matches[string(k)]
				_, inPending := p.pending[string(k)]
				if (b == bucketMatches && inMatches) || (b == bucketPending && inPending) {
					continue
				}
				if err := deleteIfAny(tx, b, slices.Clone(k)); err != nil {
					return err
				}
			}
		}
	}
	for _, k := range p.keys {
		key := []byte(k)
		if m := p.matches[k]; m != nil {
			if len(m.times) == 0 {
				if err := deleteIfAny(tx, bucketMatches, key); err != nil {
					return err
				}
				continue
			}
			value := m.times
			if !m.clear {
				old, err := tx.Get(bucketMatches, key)
				if err != nil && !notFound(err) {
					return err
				}
				value = append(slices.Clip(old), m.times...)
			}
			if err := tx.Put(bucketMatches, key, value, nutsdb.Persistent); err != nil {
				return err
			}
			continue
		}
		q := p.pending[k]
		if !q.put {
			if err := deleteIfAny(tx, bucketPending, key); err != nil {
				return err
			}
			continue
		}
		if err := tx.Put(bucketPending, key, q.trigger, nutsdb.Persistent); err != nil {
			return err
		}
	}
	return nil
}
