#!/usr/bin/perl
# Scenarios run with AnyEvent::RabbitMQ (Perl, on Net::AMQP) against a broker:
#
#   anyevent_client.pl PORT SCENARIO
#
# The client opens with the AMQP 0-9 protocol header (AMQP 1 1 0 9), which
# RabbitMQ answers in 0-9-1.  Each scenario prints "ok SCENARIO" and exits 0,
# or prints the failure and exits 1.  test_anyevent_rabbitmq.py runs each as a
# test case.
use strict;
use warnings;

use AnyEvent;
use AnyEvent::RabbitMQ;

my ($port, $scenario) = @ARGV;
die "usage: $0 PORT SCENARIO\n" unless $port && $scenario;

# Every wait is bounded: a broker that never answers fails the scenario.
sub wait_for {
	my ($cv, $what) = @_;
	my $t = AnyEvent->timer(after => 30, cb => sub {
		$cv->croak("timed out waiting for $what");
	});
	return $cv->recv;
}

# Run an AnyEvent::RabbitMQ call that takes on_success/on_failure; return
# the success arguments or die with the failure.
sub call {
	my ($obj, $method, %args) = @_;
	my $cv = AnyEvent->condvar;
	$obj->$method(%args,
	    on_success => sub { $cv->send(@_) },
	    on_failure => sub { $cv->croak("$method failed: " . describe(@_)) });
	return wait_for($cv, $method);
}

sub describe {
	my ($why) = @_;
	return "undef" unless defined $why;
	return $why unless ref $why;
	if (eval { $why->can('method_frame') }) {
		my $m = $why->method_frame;
		return ref($m) . (eval { " " . $m->reply_code . " " . $m->reply_text } // "");
	}
	return "$why";
}

sub check {
	my ($cond, $msg) = @_;
	die "$msg\n" unless $cond;
}

sub uniq { sprintf("perl-%s-%08x", $_[0], int(rand(2**32))) }

sub connect_broker {
	my $ar = AnyEvent::RabbitMQ->new->load_xml_spec();
	call($ar, 'connect', host => '127.0.0.1', port => $port, user => 'guest',
	    pass => 'guest', vhost => '/', timeout => 10,
	    on_close => sub {}, on_read_failure => sub { warn @_, "\n" });
	return $ar;
}

sub open_channel {
	my ($ar, %args) = @_;
	my ($ch) = call($ar, 'open_channel', on_close => sub {}, %args);
	return $ch;
}

sub declare_queue {
	my ($ch, $name) = @_;
	my ($frame) = call($ch, 'declare_queue', queue => $name,
	    auto_delete => 1);
	return $frame->method_frame->queue;
}

# Publish COUNT messages in confirm mode; return once the broker has
# confirmed every one (dies on a nack).
sub publish_confirmed {
	my ($ch, $queue, $count) = @_;
	my $cv = AnyEvent->condvar;
	my $acked = 0;
	for my $i (1 .. $count) {
		$ch->publish(exchange => '', routing_key => $queue,
		    body => "message $i",
		    header => { delivery_mode => 2, message_id => "id-$i",
			headers => { seq => $i } },
		    on_ack => sub { $cv->send if ++$acked == $count },
		    on_nack => sub { $cv->croak("message $i nacked") });
	}
	wait_for($cv, "confirms");
	return $acked;
}

sub close_broker {
	my ($ar) = @_;
	my $cv = AnyEvent->condvar;
	$ar->close(on_success => sub { $cv->send(1) },
	    on_failure => sub { $cv->croak("close failed: " . describe(@_)) });
	wait_for($cv, "connection.close-ok");
}

my %scenarios;

# Connect, declare, publish with confirms, consume with manual acks, close.
$scenarios{roundTrip} = sub {
	my $ar = connect_broker();
	my $props = $ar->server_properties;
	check(ref $props eq 'HASH' && $props->{product}, "no server properties");
	my $ch = open_channel($ar);
	my $q = declare_queue($ch, uniq("roundtrip"));
	call($ch, 'confirm');
	my $n = 20;
	check(publish_confirmed($ch, $q, $n) == $n, "not every publish confirmed");

	call($ch, 'qos', prefetch_count => 5);
	my $cv = AnyEvent->condvar;
	my @got;
	call($ch, 'consume', queue => $q, no_ack => 0, on_consume => sub {
		my ($msg) = @_;
		my $tag = $msg->{deliver}->method_frame->delivery_tag;
		push @got, [$msg->{body}->payload,
		    $msg->{header}->headers->{seq},
		    $msg->{header}->message_id];
		$ch->ack(delivery_tag => $tag);
		$cv->send if @got == $n;
	});
	wait_for($cv, "$n deliveries");
	for my $i (1 .. $n) {
		my ($body, $seq, $id) = @{$got[$i - 1]};
		check($body eq "message $i", "delivery $i has body '$body'");
		check($seq == $i, "delivery $i has header seq=$seq");
		check($id eq "id-$i", "delivery $i has message-id '$id'");
	}
	# Every message was acked: the queue is empty.
	my ($ok) = call($ch, 'declare_queue', queue => $q, passive => 1);
	check($ok->method_frame->message_count == 0,
	    "queue still holds " . $ok->method_frame->message_count);
	close_broker($ar);
};

# A rejected delivery comes back redelivered; get sees the rest in order.
$scenarios{rejectRequeue} = sub {
	my $ar = connect_broker();
	my $ch = open_channel($ar);
	my $q = declare_queue($ch, uniq("requeue"));
	call($ch, 'confirm');
	publish_confirmed($ch, $q, 2);
	my ($first) = call($ch, 'get', queue => $q, no_ack => 0);
	check($first->{body}->payload eq "message 1", "first get is not message 1");
	check(!$first->{ok}->method_frame->redelivered, "fresh message marked redelivered");
	$ch->reject(delivery_tag => $first->{ok}->method_frame->delivery_tag,
	    requeue => 1);
	my ($again) = call($ch, 'get', queue => $q, no_ack => 1);
	check($again->{body}->payload eq "message 1", "requeued message lost its place");
	check($again->{ok}->method_frame->redelivered, "requeued message not redelivered");
	my ($second) = call($ch, 'get', queue => $q, no_ack => 1);
	check($second->{body}->payload eq "message 2", "second get is not message 2");
	my ($empty) = call($ch, 'get', queue => $q, no_ack => 1);
	check($empty->{empty}, "queue not empty after two gets");
	close_broker($ar);
};

# A passive declare of a missing queue closes the channel with 404; the
# connection goes on.
$scenarios{channelError} = sub {
	my $ar = connect_broker();
	my $closed = AnyEvent->condvar;
	my $ch = open_channel($ar, on_close => sub { $closed->send(@_) });
	my $failed = AnyEvent->condvar;
	$ch->declare_queue(queue => uniq("missing"), passive => 1,
	    on_success => sub { $failed->croak("passive declare of a missing queue succeeded") },
	    on_failure => sub { $failed->send(@_) });
	wait_for($failed, "declare to fail");
	my ($frame) = wait_for($closed, "channel.close");
	my $code = eval { $frame->method_frame->reply_code } // -1;
	check($code == 404, "expected channel.close 404, got " . describe($frame));
	my $ch2 = open_channel($ar);
	declare_queue($ch2, uniq("after-error"));
	close_broker($ar);
};

# A mandatory publish nobody can take comes back, and is still confirmed.
$scenarios{mandatoryReturn} = sub {
	my $ar = connect_broker();
	my $ch = open_channel($ar);
	call($ch, 'confirm');
	my $cv = AnyEvent->condvar;
	my ($returned, $acked) = (0, 0);
	$ch->publish(exchange => '', routing_key => uniq("nowhere"),
	    mandatory => 1, body => "lost",
	    on_return => sub { $returned++ },
	    on_ack => sub { $acked++; $cv->send },
	    on_nack => sub { $cv->croak("unroutable message nacked") });
	wait_for($cv, "confirm of a returned message");
	check($returned == 1, "basic.return did not arrive before the ack");
	check($acked == 1, "no ack");
	close_broker($ar);
};

my $run = $scenarios{$scenario} or die "unknown scenario $scenario\n";
eval { $run->(); 1 } or do {
	print "FAIL $scenario: $@";
	exit 1;
};
print "ok $scenario\n";
exit 0;
