package daemon

import (
	"reaction/cmd/reaction/internal/control"
	"reaction/graph"
	"reaction/stages"
)

// controller adapts the engine to the control socket's wire types.
type controller struct {
	engine  *stages.Engine
	filters []control.FilterInfo
}

func newController(e *stages.Engine, g *graph.Graph) *controller {
	c := &controller{engine: e}
	for _, s := range g.Streams() {
		for _, f := range s.Filters {
			names := make([]string, len(f.Extract.Patterns))
			for i, p := range f.Extract.Patterns {
				names[i] = p.Name
			}
			c.filters = append(c.filters, control.FilterInfo{Stream: f.Extract.Stream, Filter: f.Extract.Filter, Patterns: names})
		}
	}
	return c
}

// Show and Flush check the selector first: the engine silently selects
// nothing for an unknown stream, filter or pattern, the operator wants to
// hear about the typo.
func (c *controller) Show(sel control.Selector) (control.Snapshot, error) {
	if err := control.CheckSelector(sel, c.filters); err != nil {
		return control.Snapshot{}, err
	}
	return snapshot(c.engine.Show(selector(sel))), nil
}

func (c *controller) Flush(sel control.Selector) (control.Snapshot, error) {
	if err := control.CheckSelector(sel, c.filters); err != nil {
		return control.Snapshot{}, err
	}
	s, err := c.engine.Flush(selector(sel))
	return snapshot(s), err
}

func (c *controller) Trigger(stream, filter string, values map[string]string) error {
	return c.engine.Trigger(stream, filter, values)
}

func (c *controller) Stats() map[string]map[string]uint64 { return c.engine.Stats() }

func selector(s control.Selector) stages.Selector {
	return stages.Selector{Stream: s.Stream, Filter: s.Filter, Values: s.Patterns}
}

func snapshot(s stages.Snapshot) control.Snapshot {
	out := control.Snapshot{Filters: make([]control.Filter, 0, len(s.Filters))}
	for _, f := range s.Filters {
		cf := control.Filter{Stream: f.Stream, Filter: f.Filter, Patterns: f.Patterns,
			Matches: make([]control.Match, len(f.Matches)), Pending: make([]control.Pending, len(f.Pending))}
		for i, m := range f.Matches {
			cf.Matches[i] = control.Match{Values: m.Values, Count: m.Count}
		}
		for i, p := range f.Pending {
			cf.Pending[i] = control.Pending{Values: p.Values, Action: p.Action, Due: p.Due}
		}
		out.Filters = append(out.Filters, cf)
	}
	return out
}
