
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'alertstream' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'alertstream'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'alertstream' {
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka', '--kafka', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka-config', '--kafka-config', [CompletionResultType]::ParameterName, 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('send', 'send', [CompletionResultType]::ParameterValue, 'Send one visit of alerts, or a visit at every interval with --repeat')
            [CompletionResult]::new('print', 'print', [CompletionResultType]::ParameterValue, 'Consume a stream and print each alert as one JSON object per line')
            [CompletionResult]::new('monitor', 'monitor', [CompletionResultType]::ParameterValue, 'Watch a stream and the groups reading it: end-of-partition lines, rates, latency, group lag')
            [CompletionResult]::new('record', 'record', [CompletionResultType]::ParameterValue, 'Archive a stream to Avro or Parquet files, each committed only once on disk')
            [CompletionResult]::new('filter', 'filter', [CompletionResultType]::ParameterValue, 'Route the alerts an expression selects to other topics, unchanged, exactly once')
            [CompletionResult]::new('view', 'view', [CompletionResultType]::ParameterValue, 'Look at a stream in a web browser: rates, the newest alerts, cutouts, light curves')
            [CompletionResult]::new('simulate', 'simulate', [CompletionResultType]::ParameterValue, 'Write simulated alerts to Avro files, one per visit, instead of Kafka')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print a manual page (roff) to stdout: alertstream(1), or a subcommand''s')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'alertstream;send' {
            [CompletionResult]::new('--alerts', '--alerts', [CompletionResultType]::ParameterName, 'Avro object container file, or folder of them, to take alerts from (repeatable)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'How each message frames its Avro data')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Key each message by this alert field (e.g. objectId; Rubin: diaSource.diaObjectId), so that one object''s alerts stay on one partition, in order [default: no key]. Not with --format key-schema, whose key is the schema')
            [CompletionResult]::new('--schema-id', '--schema-id', [CompletionResultType]::ParameterName, 'Schema registry id written into each message with --format confluent (without --schema-registry)')
            [CompletionResult]::new('--schema-registry', '--schema-registry', [CompletionResultType]::ParameterName, 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio''s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file')
            [CompletionResult]::new('--registry-auth-file', '--registry-auth-file', [CompletionResultType]::ParameterName, 'A file holding one line user:password for the registry''s basic auth (kept out of the command line and process list)')
            [CompletionResult]::new('--registry-ca', '--registry-ca', [CompletionResultType]::ParameterName, 'PEM file of the CA that signed the registry''s certificate [default: the system''s roots]')
            [CompletionResult]::new('--subject', '--subject', [CompletionResultType]::ParameterName, 'Subject to register the writer schema under with --schema-registry [default: TOPIC-value, Confluent''s topic-name strategy]')
            [CompletionResult]::new('--pace', '--pace', [CompletionResultType]::ParameterName, 'Replay at the archive''s own pace instead of in visits: "recorded" keeps the gaps between the broker timestamps alertstream record kept (its .kafka.jsonl sidecars, with each alert''s key and headers); a field such as candidate.jd (ZTF) or diaSource.midpointMjdTai (Rubin) paces by that time instead (fields named *jd*/*mjd* in days, others in seconds)')
            [CompletionResult]::new('--speed', '--speed', [CompletionResultType]::ParameterName, 'With --pace: play this many times faster (0.5 is half as fast)')
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'Seconds between visits with --repeat (fractions allowed, e.g. 0.5) [default: 39]; with --simulate also the grid its visits are numbered on. Refused without either: a single visit has no interval')
            [CompletionResult]::new('--max-repeats', '--max-repeats', [CompletionResultType]::ParameterName, 'Number of visits with --repeat [default: 2215, 39 s each: about 24 hours]')
            [CompletionResult]::new('--partitions', '--partitions', [CompletionResultType]::ParameterName, 'Partitions of the topic when it has to be created [default: 1]; an existing topic keeps its own (a warning says so when they differ)')
            [CompletionResult]::new('--replication-factor', '--replication-factor', [CompletionResultType]::ParameterName, 'Replication factor of the topic when it has to be created [default: the cluster''s default.replication.factor]')
            [CompletionResult]::new('--flush-timeout', '--flush-timeout', [CompletionResultType]::ParameterName, 'Seconds Ctrl-C or SIGTERM waits for deliveries in flight before giving up on them (8 fits Docker''s 10 s stop grace period)')
            [CompletionResult]::new('--simulate', '--simulate', [CompletionResultType]::ParameterName, 'Make the alerts instead of reading them: unique, evolving alerts of a simulated survey (recurring objects with growing histories, moving asteroids, bogus detections, real FITS cutouts). COUNT defaults to 10,000')
            [CompletionResult]::new('--schema', '--schema', [CompletionResultType]::ParameterName, 'Schema to fill (.avsc file or folder): another ZTF version, or Rubin''s published schema, e.g. lsst-alert-packet''s schema/11/1 [ztf default: built-in 4.02]')
            [CompletionResult]::new('--seed', '--seed', [CompletionResultType]::ParameterName, 'Seed of the simulated sky: the same seed, --start and options give the same bytes [default: 1]')
            [CompletionResult]::new('--start', '--start', [CompletionResultType]::ParameterName, 'Time of the first visit (RFC 3339, -1h, @epoch-ms), on the grid of --interval [default: now; visits then follow the wall clock, so sharded senders on several hosts agree]')
            [CompletionResult]::new('--fields', '--fields', [CompletionResultType]::ParameterName, 'Fields the visits cycle over: fewer fields, more recurrences [default: 4]')
            [CompletionResult]::new('--objects', '--objects', [CompletionResultType]::ParameterName, 'Objects in the simulated sky [default: 20 x COUNT]')
            [CompletionResult]::new('--mix', '--mix', [CompletionResultType]::ParameterName, 'Shares of the classes, e.g. periodic=0.4,transient=0.2,agn=0.2,solar-system=0.1,bogus=0.1; classes left out share the rest')
            [CompletionResult]::new('--bursts', '--bursts', [CompletionResultType]::ParameterName, 'Send each visit in N bursts, detector by detector (Rubin''s alert production emits a visit per detector) [default: 1]')
            [CompletionResult]::new('--spread', '--spread', [CompletionResultType]::ParameterName, 'Seconds the bursts of a visit are spread over [default: 0]')
            [CompletionResult]::new('--shard', '--shard', [CompletionResultType]::ParameterName, 'Make only detectors d with d mod N == I (ZTF: readout quadrants), with the ids an unsharded run gives them: N hosts with I = 0..N-1 make one stream')
            [CompletionResult]::new('--shard-slot', '--shard-slot', [CompletionResultType]::ParameterName, '--shard counted from 1, as Docker Swarm numbers a service''s replicas: ALERTSTREAM_SHARD_SLOT="{{.Task.Slot}}/3" in a stack file''s environment')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka', '--kafka', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka-config', '--kafka-config', [CompletionResultType]::ParameterName, 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)')
            [CompletionResult]::new('--no-stamps', '--no-stamps', [CompletionResultType]::ParameterName, 'Send the cutout fields empty (null), without postage stamps')
            [CompletionResult]::new('--encode-off', '--encode-off', [CompletionResultType]::ParameterName, 'Send alerts as JSON text instead of Avro binary')
            [CompletionResult]::new('--repeat', '--repeat', [CompletionResultType]::ParameterName, 'Keep sending: one visit at every wall-clock multiple of --interval; with --pace, the whole archive again after its last alert')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'alertstream;print' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'Consumer group id [default: $HOSTNAME]. Consumers in one group share the stream; offsets are committed only after an alert is written out')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'Consumer group id [default: $HOSTNAME]. Consumers in one group share the stream; offsets are committed only after an alert is written out')
            [CompletionResult]::new('--max-messages', '--max-messages', [CompletionResultType]::ParameterName, 'Exit after this many messages')
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'Start at this time instead of where the command starts (a group''s committed offsets, or the partitions'' ends): each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d, or now) or epoch milliseconds (@1795931367000)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from')
            [CompletionResult]::new('--broker-timeout', '--broker-timeout', [CompletionResultType]::ParameterName, 'Exit with an error once every broker has been unreachable this long')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'How messages frame their Avro data')
            [CompletionResult]::new('--wire', '--wire', [CompletionResultType]::ParameterName, 'How messages frame their Avro data')
            [CompletionResult]::new('--max-alert-bytes', '--max-alert-bytes', [CompletionResultType]::ParameterName, 'The most one alert may take, in bytes of Avro binary (after decompression); larger ones are reported and skipped. Suffixes K, M, G')
            [CompletionResult]::new('--schema', '--schema', [CompletionResultType]::ParameterName, 'Reader schema: .avsc files or a folder of them [default: built-in]')
            [CompletionResult]::new('--schema-registry', '--schema-registry', [CompletionResultType]::ParameterName, 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio''s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file')
            [CompletionResult]::new('--registry-auth-file', '--registry-auth-file', [CompletionResultType]::ParameterName, 'A file holding one line user:password for the registry''s basic auth (kept out of the command line and process list)')
            [CompletionResult]::new('--registry-ca', '--registry-ca', [CompletionResultType]::ParameterName, 'PEM file of the CA that signed the registry''s certificate [default: the system''s roots]')
            [CompletionResult]::new('--registry-cache', '--registry-cache', [CompletionResultType]::ParameterName, 'Keep each schema fetched from the registry in this folder too, so a restart decodes without the registry (ids are never reused)')
            [CompletionResult]::new('--schema-dir', '--schema-dir', [CompletionResultType]::ParameterName, 'Writer schemas by id without a registry, laid out as Rubin publishes them (lsst-alert-packet''s schema/ folder): id 703 is DIR/7/3/*.avsc')
            [CompletionResult]::new('--on-unknown-schema', '--on-unknown-schema', [CompletionResultType]::ParameterName, 'A Confluent-framed message whose schema id neither the registry nor --schema-dir knows: stop before it (exit 1, its offset not committed: an unknown id almost always means a wrong or reset registry), or skip it (counted in alertstream_decode_errors_total, reason unknown_schema)')
            [CompletionResult]::new('--stamp-dir', '--stamp-dir', [CompletionResultType]::ParameterName, 'Write each alert''s cutouts into this folder (created if missing), named by their fileName')
            [CompletionResult]::new('--where', '--where', [CompletionResultType]::ParameterName, 'Print only the alerts this CEL expression selects, e.g. ''candidate.magpsf < 17.0'' (see filter)')
            [CompletionResult]::new('--dead-letter', '--dead-letter', [CompletionResultType]::ParameterName, 'Copy every message that is not handled (refused by the decode gate, an unknown schema id under --on-unknown-schema skip, over --max-alert-bytes) unchanged to this topic, with the reason in headers alertstream-error, alertstream-error-detail and alertstream-source (topic/partition/offset); its offset is committed only once the copy is acknowledged')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka', '--kafka', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka-config', '--kafka-config', [CompletionResultType]::ParameterName, 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)')
            [CompletionResult]::new('-e', '-e', [CompletionResultType]::ParameterName, 'Exit once every partition read has reached its end')
            [CompletionResult]::new('--exit-at-end', '--exit-at-end', [CompletionResultType]::ParameterName, 'Exit once every partition read has reached its end')
            [CompletionResult]::new('--no-wait', '--no-wait', [CompletionResultType]::ParameterName, 'Fail at once if the topic does not exist, instead of waiting for it')
            [CompletionResult]::new('--decode-off', '--decode-off', [CompletionResultType]::ParameterName, 'Print payloads as they are, without Avro decoding (for streams sent with --encode-off)')
            [CompletionResult]::new('--meta', '--meta', [CompletionResultType]::ParameterName, 'Add where each alert came from to its line, as a "_kafka" object: partition, offset, timestamp (ms), the visit and index send gave it, the framing (schemaless, container, confluent, key-schema), the schema id of a Confluent-framed message (else null), and, for a copy on a --dead-letter topic, "dead_letter": its error, detail and source; for a message a replay sent, "replay": its loop and offset_ms')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'alertstream;monitor' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'A consumer group to watch (repeatable): its lag per partition, from its committed offsets. Monitor never joins or commits for it')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'A consumer group to watch (repeatable): its lag per partition, from its committed offsets. Monitor never joins or commits for it')
            [CompletionResult]::new('--max-messages', '--max-messages', [CompletionResultType]::ParameterName, 'Exit after this many messages')
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'Start at this time instead of where the command starts (a group''s committed offsets, or the partitions'' ends): each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d, or now) or epoch milliseconds (@1795931367000)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from')
            [CompletionResult]::new('--broker-timeout', '--broker-timeout', [CompletionResultType]::ParameterName, 'Exit with an error once every broker has been unreachable this long')
            [CompletionResult]::new('--every', '--every', [CompletionResultType]::ParameterName, 'Seconds between status lines (rate, lag, latency); 0 turns them off')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka', '--kafka', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka-config', '--kafka-config', [CompletionResultType]::ParameterName, 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)')
            [CompletionResult]::new('-e', '-e', [CompletionResultType]::ParameterName, 'Exit once every partition read has reached its end')
            [CompletionResult]::new('--exit-at-end', '--exit-at-end', [CompletionResultType]::ParameterName, 'Exit once every partition read has reached its end')
            [CompletionResult]::new('--no-wait', '--no-wait', [CompletionResultType]::ParameterName, 'Fail at once if the topic does not exist, instead of waiting for it')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'alertstream;record' {
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Folder to write the archive into (created if missing). Nothing is written outside it')
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'Consumer group id [default: $HOSTNAME]. Offsets are committed only for alerts in files already renamed into place')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'Consumer group id [default: $HOSTNAME]. Offsets are committed only for alerts in files already renamed into place')
            [CompletionResult]::new('--max-messages', '--max-messages', [CompletionResultType]::ParameterName, 'Exit after this many messages')
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'Start at this time instead of where the command starts (a group''s committed offsets, or the partitions'' ends): each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d, or now) or epoch milliseconds (@1795931367000)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from')
            [CompletionResult]::new('--broker-timeout', '--broker-timeout', [CompletionResultType]::ParameterName, 'Exit with an error once every broker has been unreachable this long')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Archive format: avro keeps each alert''s bytes as they arrived, with its writer schema; parquet derives columns from the Avro schema (how messages frame their Avro is --wire)')
            [CompletionResult]::new('--codec', '--codec', [CompletionResultType]::ParameterName, 'Compression of the archive''s blocks (Avro) or pages (Parquet)')
            [CompletionResult]::new('--roll-alerts', '--roll-alerts', [CompletionResultType]::ParameterName, 'Start a new file after this many alerts')
            [CompletionResult]::new('--roll-seconds', '--roll-seconds', [CompletionResultType]::ParameterName, 'Start a new file after this many seconds')
            [CompletionResult]::new('--roll-bytes', '--roll-bytes', [CompletionResultType]::ParameterName, 'Start a new file past this size (suffixes K, M, G)')
            [CompletionResult]::new('--where', '--where', [CompletionResultType]::ParameterName, 'Archive only the alerts this CEL expression selects (see filter)')
            [CompletionResult]::new('--wire', '--wire', [CompletionResultType]::ParameterName, 'How messages frame their Avro data (as print --format)')
            [CompletionResult]::new('--schema', '--schema', [CompletionResultType]::ParameterName, 'Reader schema for bare and Confluent-framed messages [default: built-in]; with it, containers are resolved to it too. The fields --where may name, and the columns of Parquet archives, follow it')
            [CompletionResult]::new('--max-alert-bytes', '--max-alert-bytes', [CompletionResultType]::ParameterName, 'The most one alert may take, in bytes of Avro binary')
            [CompletionResult]::new('--schema-registry', '--schema-registry', [CompletionResultType]::ParameterName, 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio''s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file')
            [CompletionResult]::new('--registry-auth-file', '--registry-auth-file', [CompletionResultType]::ParameterName, 'A file holding one line user:password for the registry''s basic auth (kept out of the command line and process list)')
            [CompletionResult]::new('--registry-ca', '--registry-ca', [CompletionResultType]::ParameterName, 'PEM file of the CA that signed the registry''s certificate [default: the system''s roots]')
            [CompletionResult]::new('--registry-cache', '--registry-cache', [CompletionResultType]::ParameterName, 'Keep each schema fetched from the registry in this folder too, so a restart decodes without the registry (ids are never reused)')
            [CompletionResult]::new('--schema-dir', '--schema-dir', [CompletionResultType]::ParameterName, 'Writer schemas by id without a registry, laid out as Rubin publishes them (lsst-alert-packet''s schema/ folder): id 703 is DIR/7/3/*.avsc')
            [CompletionResult]::new('--on-unknown-schema', '--on-unknown-schema', [CompletionResultType]::ParameterName, 'A Confluent-framed message whose schema id neither the registry nor --schema-dir knows: stop before it (exit 1, its offset not committed: an unknown id almost always means a wrong or reset registry), or skip it (counted in alertstream_decode_errors_total, reason unknown_schema)')
            [CompletionResult]::new('--dead-letter', '--dead-letter', [CompletionResultType]::ParameterName, 'Copy every message that is not handled (refused by the decode gate, an unknown schema id under --on-unknown-schema skip, over --max-alert-bytes) unchanged to this topic, with the reason in headers alertstream-error, alertstream-error-detail and alertstream-source (topic/partition/offset); its offset is committed only once the copy is acknowledged')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka', '--kafka', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka-config', '--kafka-config', [CompletionResultType]::ParameterName, 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)')
            [CompletionResult]::new('-e', '-e', [CompletionResultType]::ParameterName, 'Exit once every partition read has reached its end')
            [CompletionResult]::new('--exit-at-end', '--exit-at-end', [CompletionResultType]::ParameterName, 'Exit once every partition read has reached its end')
            [CompletionResult]::new('--no-wait', '--no-wait', [CompletionResultType]::ParameterName, 'Fail at once if the topic does not exist, instead of waiting for it')
            [CompletionResult]::new('--no-stamps', '--no-stamps', [CompletionResultType]::ParameterName, 'Leave the cutouts out (Parquet only: Avro archives keep alerts whole)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'alertstream;filter' {
            [CompletionResult]::new('--where', '--where', [CompletionResultType]::ParameterName, 'A CEL expression over the alert as print shows it, e.g. ''candidate.rb >= 0.65 && abs(candidate.magdiff) <= 0.1''. Each --where pairs with the --to that follows it (repeatable: several routes)')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'Topic the alerts its --where selects go to (created if missing)')
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'Consumer group id [default: $HOSTNAME]. Input offsets are committed in the same transaction as the alerts they selected (not with --from or --until: a window is read outside the group and commits no offsets)')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'Consumer group id [default: $HOSTNAME]. Input offsets are committed in the same transaction as the alerts they selected (not with --from or --until: a window is read outside the group and commits no offsets)')
            [CompletionResult]::new('--max-messages', '--max-messages', [CompletionResultType]::ParameterName, 'Exit after this many messages')
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'Start at this time instead of where the command starts (a group''s committed offsets, or the partitions'' ends): each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d, or now) or epoch milliseconds (@1795931367000)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from')
            [CompletionResult]::new('--broker-timeout', '--broker-timeout', [CompletionResultType]::ParameterName, 'Exit with an error once every broker has been unreachable this long')
            [CompletionResult]::new('--transactional-id', '--transactional-id', [CompletionResultType]::ParameterName, 'The producer''s transactional.id [default: alertstream-filter-GROUP-TOPIC-HOST; with --from or --until, alertstream-filter-window-GROUP-TOPIC-HOST]. A restart with the same id fences the old instance''s open transaction')
            [CompletionResult]::new('--limit-per-visit', '--limit-per-visit', [CompletionResultType]::ParameterName, 'Each route forwards at most N messages per visit, the first N it reads. The visit is what --visit-key names, or else the alertstream-visit header send writes; messages with neither are not capped (said once). Counts live in this process: a restart mid-visit counts that visit afresh')
            [CompletionResult]::new('--visit-key', '--visit-key', [CompletionResultType]::ParameterName, 'What names an alert''s visit for --limit-per-visit, e.g. ''diaSource.visit'' (Rubin) or ''candidate.jd'' (ZTF: one exposure) [default: the alertstream-visit header]')
            [CompletionResult]::new('--dedupe-key', '--dedupe-key', [CompletionResultType]::ParameterName, 'Each route forwards an object once per --dedupe-window; EXPR names the object, e.g. ''objectId'' (ZTF) or ''diaObject.diaObjectId'' (Rubin). An alert whose key is null is never a duplicate. What was routed is remembered in this process: after a restart an object may go once more')
            [CompletionResult]::new('--dedupe-window', '--dedupe-window', [CompletionResultType]::ParameterName, 'How long after an object is routed it is not routed again, in the messages'' own time (their timestamps): 90s, 30m, 12h, 2d')
            [CompletionResult]::new('--commit-interval', '--commit-interval', [CompletionResultType]::ParameterName, 'Seconds between transaction commits: what a read_committed reader waits for at most, besides the transport')
            [CompletionResult]::new('--wire', '--wire', [CompletionResultType]::ParameterName, 'How messages frame their Avro data (as print --format)')
            [CompletionResult]::new('--schema', '--schema', [CompletionResultType]::ParameterName, 'Reader schema for bare and Confluent-framed messages [default: built-in]; with it, containers are resolved to it too. The fields --where may name, and the columns of Parquet archives, follow it')
            [CompletionResult]::new('--max-alert-bytes', '--max-alert-bytes', [CompletionResultType]::ParameterName, 'The most one alert may take, in bytes of Avro binary')
            [CompletionResult]::new('--schema-registry', '--schema-registry', [CompletionResultType]::ParameterName, 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio''s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file')
            [CompletionResult]::new('--registry-auth-file', '--registry-auth-file', [CompletionResultType]::ParameterName, 'A file holding one line user:password for the registry''s basic auth (kept out of the command line and process list)')
            [CompletionResult]::new('--registry-ca', '--registry-ca', [CompletionResultType]::ParameterName, 'PEM file of the CA that signed the registry''s certificate [default: the system''s roots]')
            [CompletionResult]::new('--registry-cache', '--registry-cache', [CompletionResultType]::ParameterName, 'Keep each schema fetched from the registry in this folder too, so a restart decodes without the registry (ids are never reused)')
            [CompletionResult]::new('--schema-dir', '--schema-dir', [CompletionResultType]::ParameterName, 'Writer schemas by id without a registry, laid out as Rubin publishes them (lsst-alert-packet''s schema/ folder): id 703 is DIR/7/3/*.avsc')
            [CompletionResult]::new('--on-unknown-schema', '--on-unknown-schema', [CompletionResultType]::ParameterName, 'A Confluent-framed message whose schema id neither the registry nor --schema-dir knows: stop before it (exit 1, its offset not committed: an unknown id almost always means a wrong or reset registry), or skip it (counted in alertstream_decode_errors_total, reason unknown_schema)')
            [CompletionResult]::new('--dead-letter', '--dead-letter', [CompletionResultType]::ParameterName, 'Copy every message that is not handled (refused by the decode gate, an unknown schema id under --on-unknown-schema skip, over --max-alert-bytes) unchanged to this topic, with the reason in headers alertstream-error, alertstream-error-detail and alertstream-source (topic/partition/offset); its offset is committed only once the copy is acknowledged')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka', '--kafka', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka-config', '--kafka-config', [CompletionResultType]::ParameterName, 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)')
            [CompletionResult]::new('-e', '-e', [CompletionResultType]::ParameterName, 'Exit once every partition read has reached its end')
            [CompletionResult]::new('--exit-at-end', '--exit-at-end', [CompletionResultType]::ParameterName, 'Exit once every partition read has reached its end')
            [CompletionResult]::new('--no-wait', '--no-wait', [CompletionResultType]::ParameterName, 'Fail at once if the topic does not exist, instead of waiting for it')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'alertstream;view' {
            [CompletionResult]::new('--archive', '--archive', [CompletionResultType]::ParameterName, 'Show a folder that `record` wrote (Avro or Parquet) instead of topics: its newest --keep alerts, with the topic, partition and offset each came from (filter with e.g. objectId == "ZTF18abc"). The folder is shown as it is: --group, -e, --max-messages, --no-wait, --from and --until are for topics')
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address the page is served on. Anything but a loopback address is reachable by others: give --token then')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'Require this token on every request: `Authorization: Bearer TOKEN`, or `?token=TOKEN` in the page''s address (the page passes it on)')
            [CompletionResult]::new('--where', '--where', [CompletionResultType]::ParameterName, 'Keep only the alerts this CEL expression selects (as print --where); the page''s filter box narrows further')
            [CompletionResult]::new('--keep', '--keep', [CompletionResultType]::ParameterName, 'Keep the newest N alerts in memory')
            [CompletionResult]::new('--keep-bytes', '--keep-bytes', [CompletionResultType]::ParameterName, '... and at most this many bytes of messages (the oldest go first). Suffixes K, M, G')
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'A consumer group whose lag the page shows (repeatable); view never joins or commits for it')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'A consumer group whose lag the page shows (repeatable); view never joins or commits for it')
            [CompletionResult]::new('--max-messages', '--max-messages', [CompletionResultType]::ParameterName, 'Exit after this many messages')
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'Start at this time instead of where the command starts (a group''s committed offsets, or the partitions'' ends): each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d, or now) or epoch milliseconds (@1795931367000)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from')
            [CompletionResult]::new('--broker-timeout', '--broker-timeout', [CompletionResultType]::ParameterName, 'Exit with an error once every broker has been unreachable this long')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'How messages frame their Avro data')
            [CompletionResult]::new('--wire', '--wire', [CompletionResultType]::ParameterName, 'How messages frame their Avro data')
            [CompletionResult]::new('--max-alert-bytes', '--max-alert-bytes', [CompletionResultType]::ParameterName, 'The most one alert may take, in bytes of Avro binary (after decompression); larger ones are reported and skipped. Suffixes K, M, G')
            [CompletionResult]::new('--schema', '--schema', [CompletionResultType]::ParameterName, 'Reader schema: .avsc files or a folder of them [default: built-in]')
            [CompletionResult]::new('--schema-registry', '--schema-registry', [CompletionResultType]::ParameterName, 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio''s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file')
            [CompletionResult]::new('--registry-auth-file', '--registry-auth-file', [CompletionResultType]::ParameterName, 'A file holding one line user:password for the registry''s basic auth (kept out of the command line and process list)')
            [CompletionResult]::new('--registry-ca', '--registry-ca', [CompletionResultType]::ParameterName, 'PEM file of the CA that signed the registry''s certificate [default: the system''s roots]')
            [CompletionResult]::new('--registry-cache', '--registry-cache', [CompletionResultType]::ParameterName, 'Keep each schema fetched from the registry in this folder too, so a restart decodes without the registry (ids are never reused)')
            [CompletionResult]::new('--schema-dir', '--schema-dir', [CompletionResultType]::ParameterName, 'Writer schemas by id without a registry, laid out as Rubin publishes them (lsst-alert-packet''s schema/ folder): id 703 is DIR/7/3/*.avsc')
            [CompletionResult]::new('--on-unknown-schema', '--on-unknown-schema', [CompletionResultType]::ParameterName, 'A Confluent-framed message whose schema id neither the registry nor --schema-dir knows: stop before it (exit 1, its offset not committed: an unknown id almost always means a wrong or reset registry), or skip it (counted in alertstream_decode_errors_total, reason unknown_schema)')
            [CompletionResult]::new('-b', '-b', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('--brokers', '--brokers', [CompletionResultType]::ParameterName, 'Kafka bootstrap brokers, comma-separated host:port list')
            [CompletionResult]::new('-X', '-X ', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka', '--kafka', [CompletionResultType]::ParameterName, 'Set any librdkafka property, as kcat does (repeatable)')
            [CompletionResult]::new('--kafka-config', '--kafka-config', [CompletionResultType]::ParameterName, 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)')
            [CompletionResult]::new('-e', '-e', [CompletionResultType]::ParameterName, 'Exit once every partition read has reached its end')
            [CompletionResult]::new('--exit-at-end', '--exit-at-end', [CompletionResultType]::ParameterName, 'Exit once every partition read has reached its end')
            [CompletionResult]::new('--no-wait', '--no-wait', [CompletionResultType]::ParameterName, 'Fail at once if the topic does not exist, instead of waiting for it')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'alertstream;simulate' {
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'Folder to write the visits to, one Avro object container file each (visit-N.avro)')
            [CompletionResult]::new('--visits', '--visits', [CompletionResultType]::ParameterName, 'Number of visits')
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'Seconds between visits (the simulated survey''s cadence)')
            [CompletionResult]::new('--schema', '--schema', [CompletionResultType]::ParameterName, 'Schema to fill (.avsc file or folder): another ZTF version, or Rubin''s published schema, e.g. lsst-alert-packet''s schema/11/1 [ztf default: built-in 4.02]')
            [CompletionResult]::new('--seed', '--seed', [CompletionResultType]::ParameterName, 'Seed of the simulated sky: the same seed, --start and options give the same bytes [default: 1]')
            [CompletionResult]::new('--start', '--start', [CompletionResultType]::ParameterName, 'Time of the first visit (RFC 3339, -1h, @epoch-ms), on the grid of --interval [default: now; visits then follow the wall clock, so sharded senders on several hosts agree]')
            [CompletionResult]::new('--fields', '--fields', [CompletionResultType]::ParameterName, 'Fields the visits cycle over: fewer fields, more recurrences [default: 4]')
            [CompletionResult]::new('--objects', '--objects', [CompletionResultType]::ParameterName, 'Objects in the simulated sky [default: 20 x COUNT]')
            [CompletionResult]::new('--mix', '--mix', [CompletionResultType]::ParameterName, 'Shares of the classes, e.g. periodic=0.4,transient=0.2,agn=0.2,solar-system=0.1,bogus=0.1; classes left out share the rest')
            [CompletionResult]::new('--shard', '--shard', [CompletionResultType]::ParameterName, 'Make only detectors d with d mod N == I (ZTF: readout quadrants), with the ids an unsharded run gives them: N hosts with I = 0..N-1 make one stream')
            [CompletionResult]::new('--shard-slot', '--shard-slot', [CompletionResultType]::ParameterName, '--shard counted from 1, as Docker Swarm numbers a service''s replicas: ALERTSTREAM_SHARD_SLOT="{{.Task.Slot}}/3" in a stack file''s environment')
            [CompletionResult]::new('--no-stamps', '--no-stamps', [CompletionResultType]::ParameterName, 'Leave the cutout fields empty (null), without postage stamps')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'alertstream;completions' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'alertstream;man' {
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more: -v alertstream''s debug lines and the libraries'' info, -vv debug, -vvv trace')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'alertstream;help' {
            [CompletionResult]::new('send', 'send', [CompletionResultType]::ParameterValue, 'Send one visit of alerts, or a visit at every interval with --repeat')
            [CompletionResult]::new('print', 'print', [CompletionResultType]::ParameterValue, 'Consume a stream and print each alert as one JSON object per line')
            [CompletionResult]::new('monitor', 'monitor', [CompletionResultType]::ParameterValue, 'Watch a stream and the groups reading it: end-of-partition lines, rates, latency, group lag')
            [CompletionResult]::new('record', 'record', [CompletionResultType]::ParameterValue, 'Archive a stream to Avro or Parquet files, each committed only once on disk')
            [CompletionResult]::new('filter', 'filter', [CompletionResultType]::ParameterValue, 'Route the alerts an expression selects to other topics, unchanged, exactly once')
            [CompletionResult]::new('view', 'view', [CompletionResultType]::ParameterValue, 'Look at a stream in a web browser: rates, the newest alerts, cutouts, light curves')
            [CompletionResult]::new('simulate', 'simulate', [CompletionResultType]::ParameterValue, 'Write simulated alerts to Avro files, one per visit, instead of Kafka')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print a manual page (roff) to stdout: alertstream(1), or a subcommand''s')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'alertstream;help;send' {
            break
        }
        'alertstream;help;print' {
            break
        }
        'alertstream;help;monitor' {
            break
        }
        'alertstream;help;record' {
            break
        }
        'alertstream;help;filter' {
            break
        }
        'alertstream;help;view' {
            break
        }
        'alertstream;help;simulate' {
            break
        }
        'alertstream;help;completions' {
            break
        }
        'alertstream;help;man' {
            break
        }
        'alertstream;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
