package chat

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// chatMetrics are the chat package's self metrics.
type chatMetrics struct{ set *metrics.Set }

func newChatMetrics(set *metrics.Set) *chatMetrics { return &chatMetrics{set: set} }

// messages counts batched messages sent to a network by outcome: sent,
// rate_limited, refused, rejected, error.
func (m *chatMetrics) messages(network, outcome string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`telltale_chat_messages_total{network=%q,outcome=%q}`, network, outcome))
}

// changesSent counts the change events the messages carried.
func (m *chatMetrics) changesSent(network string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`telltale_chat_changes_sent_total{network=%q}`, network))
}

// commands counts bot commands by name and outcome: ok, refused (not
// allowed), bad (bad arguments or unknown), busy, error.
func (m *chatMetrics) commands(network, command, outcome string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`telltale_chat_commands_total{network=%q,command=%q,outcome=%q}`, network, command, outcome))
}

// images counts the images (!graph charts) posted by outcome: sent,
// unsupported (the network posts no images), not_drawn, rate_limited,
// refused, rejected, error.
func (m *chatMetrics) images(network, outcome string) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(`telltale_chat_images_total{network=%q,outcome=%q}`, network, outcome))
}
