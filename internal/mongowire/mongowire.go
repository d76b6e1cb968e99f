// Package mongowire reads and writes MongoDB wire-protocol messages: what
// the programs that stand between a driver and a database need (the twin's
// DocumentDB stand-in, the local engine's planner, the tests' fault and
// authentication proxies). It speaks the messages, not the commands.
package mongowire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Opcodes.
const (
	OpReply = 1
	OpQuery = 2004
	OpMsg   = 2013
)

// MaxMessage is the largest message read (MongoDB's maxMessageSizeBytes).
const MaxMessage = 48 << 20

// Read reads one message.
func Read(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n < 16 || n > MaxMessage {
		return nil, fmt.Errorf("message of %d bytes", n)
	}
	msg := make([]byte, n)
	copy(msg, hdr[:])
	_, err := io.ReadFull(r, msg[4:])
	return msg, err
}

// RequestID, ResponseTo and OpCode read a message's header.
func RequestID(msg []byte) uint32  { return binary.LittleEndian.Uint32(msg[4:]) }
func ResponseTo(msg []byte) uint32 { return binary.LittleEndian.Uint32(msg[8:]) }
func OpCode(msg []byte) uint32     { return binary.LittleEndian.Uint32(msg[12:]) }

// MoreToCome reports an OP_MSG whose sender will send more without being
// asked (exhaust replies, fire-and-forget requests).
func MoreToCome(msg []byte) bool {
	return len(msg) >= 20 && OpCode(msg) == OpMsg && binary.LittleEndian.Uint32(msg[16:])&2 != 0
}

// Body is the kind-0 section of an OP_MSG: the command or the reply.
func Body(msg []byte) (bson.Raw, bool) {
	if len(msg) < 21 || OpCode(msg) != OpMsg {
		return nil, false
	}
	i := 20
	for i < len(msg) {
		kind := msg[i]
		i++
		if i+4 > len(msg) {
			return nil, false
		}
		n := int(binary.LittleEndian.Uint32(msg[i:]))
		if kind == 0 {
			if n < 5 || i+n > len(msg) {
				return nil, false
			}
			return bson.Raw(msg[i : i+n]), true
		}
		i += n
	}
	return nil, false
}

// Query is the query document of an OP_QUERY (the legacy handshake).
func Query(msg []byte) (bson.Raw, error) {
	i := 20
	end := bytes.IndexByte(msg[i:], 0)
	if end < 0 {
		return nil, fmt.Errorf("OP_QUERY without a collection name")
	}
	i += end + 1 + 8
	if i+4 > len(msg) {
		return nil, fmt.Errorf("short OP_QUERY")
	}
	n := int(binary.LittleEndian.Uint32(msg[i:]))
	if i+n > len(msg) {
		return nil, fmt.Errorf("short OP_QUERY")
	}
	return bson.Raw(msg[i : i+n]), nil
}

// ReplyDoc is the first document of an OP_REPLY.
func ReplyDoc(msg []byte) bson.Raw {
	i := 16 + 4 + 8 + 4 + 4
	if i+4 > len(msg) {
		return nil
	}
	n := int(binary.LittleEndian.Uint32(msg[i:]))
	if i+n > len(msg) {
		return nil
	}
	return bson.Raw(msg[i : i+n])
}

// Command is the name of the command doc carries: its first key.
func Command(doc bson.Raw) string {
	e, err := doc.IndexErr(0)
	if err != nil {
		return ""
	}
	return e.Key()
}

var nextID atomic.Uint32

func header(length, responseTo, op uint32) []byte {
	h := make([]byte, 16, length)
	binary.LittleEndian.PutUint32(h[0:], length)
	binary.LittleEndian.PutUint32(h[4:], nextID.Add(1))
	binary.LittleEndian.PutUint32(h[8:], responseTo)
	binary.LittleEndian.PutUint32(h[12:], op)
	return h
}

// Msg is an OP_MSG answering responseTo with doc.
func Msg(responseTo uint32, doc bson.Raw) []byte {
	n := uint32(16 + 4 + 1 + len(doc))
	b := header(n, responseTo, OpMsg)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = append(b, 0)
	return append(b, doc...)
}

// Reply is an OP_REPLY answering responseTo with doc.
func Reply(responseTo uint32, doc bson.Raw) []byte {
	n := uint32(16 + 4 + 8 + 4 + 4 + len(doc))
	b := header(n, responseTo, OpReply)
	b = binary.LittleEndian.AppendUint32(b, 8) // AwaitCapable
	b = binary.LittleEndian.AppendUint64(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 1)
	return append(b, doc...)
}

// Doc marshals d (a document the caller built, which always marshals).
func Doc(d bson.D) bson.Raw {
	b, err := bson.Marshal(d)
	if err != nil {
		panic(err)
	}
	return b
}

// Sequences are the kind-1 sections of an OP_MSG: named sequences of
// documents (the driver sends insert, update and delete statements so).
func Sequences(msg []byte) (map[string][]bson.Raw, bool) {
	if len(msg) < 21 || OpCode(msg) != OpMsg {
		return nil, false
	}
	out := map[string][]bson.Raw{}
	end := len(msg)
	if binary.LittleEndian.Uint32(msg[16:])&1 != 0 { // checksumPresent
		end -= 4
	}
	i := 20
	for i < end {
		kind := msg[i]
		i++
		if i+4 > end {
			return nil, false
		}
		n := int(binary.LittleEndian.Uint32(msg[i:]))
		if n < 4 || i+n > end {
			return nil, false
		}
		if kind == 1 {
			sec := msg[i+4 : i+n]
			name := bytes.IndexByte(sec, 0)
			if name < 0 {
				return nil, false
			}
			id := string(sec[:name])
			for rest := sec[name+1:]; len(rest) > 0; {
				if len(rest) < 4 {
					return nil, false
				}
				dn := int(binary.LittleEndian.Uint32(rest))
				if dn < 5 || dn > len(rest) {
					return nil, false
				}
				out[id] = append(out[id], bson.Raw(rest[:dn]))
				rest = rest[dn:]
			}
		}
		i += n
	}
	return out, true
}

// Request is an OP_MSG request: doc as its body, no sequences.
func Request(doc bson.Raw) []byte {
	n := uint32(16 + 4 + 1 + len(doc))
	b := header(n, 0, OpMsg)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = append(b, 0)
	return append(b, doc...)
}
