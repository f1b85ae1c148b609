package flow

import (
	"sync"
	"time"
)

// Event is a change of a run or one of its steps, published after the change
// is committed.
type Event struct {
	RunID    string    `json:"run_id"`
	Flow     string    `json:"flow"`
	FileName string    `json:"file_name"`
	Step     string    `json:"step,omitempty"` // empty for run-level events
	State    string    `json:"state"`
	Error    string    `json:"error,omitempty"`
	Time     time.Time `json:"time"`
	// Active is the step's active time, for finished steps.
	Active time.Duration `json:"active_ns,omitempty"`
}

// Broker fans events out to subscribers. A subscriber that does not keep up
// loses events (never blocks the flow); state is always in the database.
type Broker struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

// NewBroker returns an empty broker.
func NewBroker() *Broker { return &Broker{subs: map[chan Event]struct{}{}} }

// Subscribe returns a channel of events and a function to unsubscribe.
func (b *Broker) Subscribe(buffer int) (<-chan Event, func()) {
	ch := make(chan Event, max(buffer, 1))
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, ch)
			b.mu.Unlock()
			close(ch)
		})
	}
}

// Publish sends ev to every subscriber that has room.
func (b *Broker) Publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}
