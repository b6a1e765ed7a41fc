// Scenarios run with amqp091-go (RabbitMQ's Go client) against a broker:
//
//	amqp091_client PORT SCENARIO
//
// Each scenario checks what the client's users rely on and exits 0, or
// prints the failure and exits 1. test_amqp091_go.py builds this file
// (GOPATH mode, against Debian's golang-github-rabbitmq-amqp091-go-dev)
// and runs each scenario as a test case.
package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func uniq(stem string) string {
	return fmt.Sprintf("amqp091-%s-%08x", stem, rand.Uint32())
}

func check(cond bool, format string, a ...interface{}) {
	if !cond {
		panic(fmt.Sprintf(format, a...))
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func declareTemp(ch *amqp.Channel, args amqp.Table) string {
	q, err := ch.QueueDeclare("", false, true, true, false, args)
	must(err)
	return q.Name
}

func getWithin(ch *amqp.Channel, q string, autoAck bool) amqp.Delivery {
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, ok, err := ch.Get(q, autoAck)
		must(err)
		if ok {
			return d
		}
		check(time.Now().Before(deadline), "nothing arrived in %s", q)
		time.Sleep(20 * time.Millisecond)
	}
}

// The next delivery, with a generous bound reached only on failure.
func next(msgs <-chan amqp.Delivery, what string) amqp.Delivery {
	select {
	case d, ok := <-msgs:
		check(ok, "delivery channel closed waiting for %s", what)
		return d
	case <-time.After(30 * time.Second):
		panic("no delivery: " + what)
	}
}

func publish(ch *amqp.Channel, x, key string, msg amqp.Publishing) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(ch.PublishWithContext(ctx, x, key, false, false, msg))
}

var scenarios = map[string]func(*amqp.Connection){
	// Properties and typed headers arrive as sent; ack.
	"roundTrip": func(conn *amqp.Connection) {
		ch, err := conn.Channel()
		must(err)
		q := declareTemp(ch, nil)
		headers := amqp.Table{"s": "x", "i32": int32(-5), "i64": int64(1) << 40,
			"b": true, "f": 1.5, "t": amqp.Table{"k": "v"}}
		publish(ch, "", q, amqp.Publishing{ContentType: "application/json",
			CorrelationId: "c-9", MessageId: "m-9", Priority: 4,
			DeliveryMode: amqp.Persistent, Headers: headers, Body: []byte(`{"a":1}`)})
		msgs, err := ch.Consume(q, "", false, false, false, false, nil)
		must(err)
		select {
		case d := <-msgs:
			check(d.RoutingKey == q && d.Exchange == "" && !d.Redelivered,
				"delivery %q/%q redelivered=%v", d.Exchange, d.RoutingKey, d.Redelivered)
			check(string(d.Body) == `{"a":1}`, "body %q", d.Body)
			check(d.ContentType == "application/json", "content type %q", d.ContentType)
			check(d.CorrelationId == "c-9" && d.MessageId == "m-9", "ids %q %q",
				d.CorrelationId, d.MessageId)
			check(d.Priority == 4 && d.DeliveryMode == amqp.Persistent, "priority/mode")
			check(d.Headers["s"] == "x", "header s %v", d.Headers["s"])
			check(d.Headers["i32"] == int32(-5), "header i32 %#v", d.Headers["i32"])
			check(d.Headers["i64"] == int64(1)<<40, "header i64 %#v", d.Headers["i64"])
			check(d.Headers["b"] == true, "header b %#v", d.Headers["b"])
			check(d.Headers["f"] == 1.5, "header f %#v", d.Headers["f"])
			t, ok := d.Headers["t"].(amqp.Table)
			check(ok && t["k"] == "v", "header t %#v", d.Headers["t"])
			must(d.Ack(false))
		case <-time.After(30 * time.Second):
			panic("no delivery")
		}
		must(ch.Close())
	},

	// Publisher confirms: each of 300 publishes is confirmed, in order.
	"confirms": func(conn *amqp.Connection) {
		ch, err := conn.Channel()
		must(err)
		must(ch.Confirm(false))
		confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 300))
		q := declareTemp(ch, nil)
		for i := 0; i < 300; i++ {
			publish(ch, "", q, amqp.Publishing{Body: []byte(fmt.Sprint(i))})
		}
		for i := 1; i <= 300; i++ {
			select {
			case c := <-confirms:
				check(c.Ack && c.DeliveryTag == uint64(i), "confirm %d: %+v", i, c)
			case <-time.After(30 * time.Second):
				panic(fmt.Sprintf("confirm %d never came", i))
			}
		}
		st, err := ch.QueueDeclarePassive(q, false, true, true, false, nil)
		must(err)
		check(st.Messages == 300, "queue holds %d", st.Messages)
		must(ch.Close())
	},

	// Mandatory publish with no route: basic.return 312 NO_ROUTE.
	"mandatoryReturn": func(conn *amqp.Connection) {
		ch, err := conn.Channel()
		must(err)
		returns := ch.NotifyReturn(make(chan amqp.Return, 1))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		must(ch.PublishWithContext(ctx, "amq.direct", uniq("nowhere"), true, false,
			amqp.Publishing{Body: []byte("lost?")}))
		select {
		case r := <-returns:
			check(r.ReplyCode == 312 && r.ReplyText == "NO_ROUTE", "return %d %s",
				r.ReplyCode, r.ReplyText)
			check(string(r.Body) == "lost?", "returned body %q", r.Body)
		case <-time.After(30 * time.Second):
			panic("no basic.return")
		}
		must(ch.Close())
	},

	// Headers exchange with x-match=any.
	"headersExchange": func(conn *amqp.Connection) {
		ch, err := conn.Channel()
		must(err)
		x := uniq("hdr")
		must(ch.ExchangeDeclare(x, "headers", false, true, false, false, nil))
		q := declareTemp(ch, nil)
		must(ch.QueueBind(q, "", x, false, amqp.Table{"x-match": "any",
			"format": "pdf", "type": "report"}))
		publish(ch, x, "", amqp.Publishing{Headers: amqp.Table{"format": "pdf"},
			Body: []byte("yes")})
		publish(ch, x, "", amqp.Publishing{Headers: amqp.Table{"format": "zip"},
			Body: []byte("no")})
		d := getWithin(ch, q, true)
		check(string(d.Body) == "yes", "got %q", d.Body)
		_, ok, err := ch.Get(q, true)
		must(err)
		check(!ok, "the non-matching message was routed")
		must(ch.Close())
	},

	// Qos(1): one unacked delivery at a time; Nack(requeue) redelivers.
	"qosAndRequeue": func(conn *amqp.Connection) {
		ch, err := conn.Channel()
		must(err)
		q := declareTemp(ch, nil)
		for i := 0; i < 3; i++ {
			publish(ch, "", q, amqp.Publishing{Body: []byte(fmt.Sprint(i))})
		}
		must(ch.Qos(1, 0, false))
		msgs, err := ch.Consume(q, "", false, false, false, false, nil)
		must(err)
		first := next(msgs, "the first delivery")
		check(string(first.Body) == "0" && !first.Redelivered, "first %q redelivered=%v",
			first.Body, first.Redelivered)
		select {
		case d := <-msgs:
			panic(fmt.Sprintf("a second delivery %q despite prefetch 1", d.Body))
		case <-time.After(300 * time.Millisecond):
		}
		must(first.Nack(false, true))
		// requeued to its old place: it comes back first, then the rest in order
		again := next(msgs, "the requeued delivery")
		check(string(again.Body) == "0" && again.Redelivered,
			"requeued %q redelivered=%v", again.Body, again.Redelivered)
		must(again.Ack(false))
		for i := 1; i < 3; i++ {
			d := next(msgs, fmt.Sprint("message ", i))
			check(string(d.Body) == fmt.Sprint(i) && !d.Redelivered, "message %d: %q redelivered=%v",
				i, d.Body, d.Redelivered)
			must(d.Ack(false))
		}
		st, err := ch.QueueDeclarePassive(q, false, true, true, false, nil)
		must(err)
		check(st.Messages == 0, "queue still holds %d", st.Messages)
		must(ch.Close())
	},

	// A 404 closes the channel with an *amqp.Error; the connection lives.
	"channelError": func(conn *amqp.Connection) {
		ch, err := conn.Channel()
		must(err)
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		_, err = ch.QueueDeclarePassive(uniq("missing"), false, false, false, false, nil)
		var aerr *amqp.Error
		check(errors.As(err, &aerr) && aerr.Code == 404, "error %v", err)
		select {
		case e := <-closed:
			check(e != nil && e.Code == 404 && e.Server, "channel close %v", e)
		case <-time.After(30 * time.Second):
			panic("channel not closed")
		}
		ch2, err := conn.Channel()
		must(err)
		declareTemp(ch2, nil)
		must(ch2.Close())
	},

	// Transactions: a committed publish arrives, a rolled-back one doesn't.
	"transactions": func(conn *amqp.Connection) {
		ch, err := conn.Channel()
		must(err)
		q := declareTemp(ch, nil)
		must(ch.Tx())
		publish(ch, "", q, amqp.Publishing{Body: []byte("kept")})
		must(ch.TxCommit())
		publish(ch, "", q, amqp.Publishing{Body: []byte("dropped")})
		must(ch.TxRollback())
		d := getWithin(ch, q, true)
		check(string(d.Body) == "kept", "got %q", d.Body)
		must(ch.TxCommit())
		_, ok, err := ch.Get(q, true)
		must(err)
		check(!ok, "the rolled-back publish arrived")
		must(ch.Close())
	},
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: amqp091_client PORT SCENARIO")
		os.Exit(2)
	}
	fn, ok := scenarios[os.Args[2]]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown scenario", os.Args[2])
		os.Exit(2)
	}
	rand.Seed(time.Now().UnixNano())
	code := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintf(os.Stderr, "FAIL %s: %v\n", os.Args[2], r)
				code = 1
			}
		}()
		conn, err := amqp.DialConfig("amqp://guest:guest@127.0.0.1:"+os.Args[1]+"/",
			amqp.Config{Heartbeat: 10 * time.Second})
		must(err)
		defer conn.Close()
		fn(conn)
	}()
	if code == 0 {
		fmt.Println("ok", os.Args[2])
	}
	os.Exit(code)
}
