//! The PostgreSQL store, against a real server (each test in a schema of
//! its own): the same answers as the SQLite store for the same writes,
//! versioned migrations (a newer schema refused and left alone, instances
//! starting together migrating once), readiness while the server is cut
//! off and back; and `callflow serve --store postgres://…` (the real
//! binary): a call survives `kill -9`, and notifications get `503` while
//! the store does not answer, `202` again when it does.
//!
//! Skipped with one notice when no PostgreSQL answers (see
//! `support::require::postgres`).

use std::time::Duration;

use callflow::runtime::store::postgres::{MIGRATIONS, PostgresStore};
use callflow::runtime::store::sqlite::SqliteStore;
use callflow::runtime::store::{JournalEntry, SessionRecord, Store, StoreError, Write};
use chrono::{DateTime, TimeZone, Utc};

use crate::support::pg::{execute, fresh_schema};
use crate::support::poll::eventually;
use crate::support::proxy::Proxy;
use crate::support::require;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + secs, 0)
        .single()
        .expect("time")
}

fn entry(seq: u64, body: Option<&str>) -> JournalEntry {
    JournalEntry {
        seq,
        event: format!("{{\"n\":{seq}}}"),
        received_at: at(seq as i64),
        body: body.map(str::to_owned),
    }
}

fn session(id: &str, state: &str, ended: Option<DateTime<Utc>>) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        flow: "menu".into(),
        flow_version: "abc123".into(),
        live: ended.is_none(),
        state: state.into(),
        updated_at: ended.unwrap_or(at(100)),
        ended_at: ended,
    }
}

fn write(rt: &tokio::runtime::Runtime, store: &dyn Store, writes: Vec<Write>) {
    rt.block_on(store.write(writes)).expect("write");
}

/// The same writes, and what each store must answer: run on SQLite and on
/// PostgreSQL alike.
fn conformance(store: &dyn Store) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let flow = |hash: &str, source: &str| Write::Flow {
        hash: hash.into(),
        name: "menu".into(),
        source: source.into(),
    };
    write(
        &rt,
        store,
        vec![flow("h1", "flow: menu"), flow("h1", "changed")],
    );
    assert_eq!(
        store.flow_source("h1").expect("read"),
        Some(("menu".into(), "flow: menu".into())),
        "a flow version is kept once, as first written"
    );
    assert_eq!(store.flow_source("h2").expect("read"), None);

    write(
        &rt,
        store,
        vec![Write::Journal(vec![
            entry(1, Some("{\"value\":[1]}")),
            entry(2, None),
            entry(3, Some("{\"value\":[3]}")),
        ])],
    );
    write(
        &rt,
        store,
        vec![Write::Session {
            record: session("s1", "{\"a\":1}", None),
            applied: vec![1, 2],
        }],
    );
    let recovered = store.recover().expect("recover");
    assert_eq!(recovered.sessions, vec![session("s1", "{\"a\":1}", None)]);
    assert_eq!(
        recovered.journal.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3],
        "only the entry no session applied is replayed"
    );
    assert_eq!(recovered.journal[0].event, "{\"n\":3}");
    assert_eq!(recovered.journal[0].received_at, at(3));

    // Two states of one session in one batch: the last is kept, and the
    // entries both applied are marked.
    write(
        &rt,
        store,
        vec![
            Write::Session {
                record: session("s1", "{\"a\":2}", None),
                applied: vec![3],
            },
            Write::Session {
                record: session("s1", "{\"a\":3}", None),
                applied: vec![],
            },
        ],
    );
    assert_eq!(
        store.session("s1").expect("read").map(|r| r.state),
        Some("{\"a\":3}".into())
    );
    assert!(store.recover().expect("recover").journal.is_empty());
    assert_eq!(
        store.recording("s1").expect("recording"),
        vec![
            (at(1), "{\"value\":[1]}".to_owned()),
            (at(3), "{\"value\":[3]}".to_owned())
        ],
        "the bodies the session applied, in order"
    );

    // Ended sessions, newest first, a page at a time.
    write(
        &rt,
        store,
        vec![
            Write::Session {
                record: session("s2", "{}", Some(at(200))),
                applied: vec![],
            },
            Write::Session {
                record: session("s3", "{}", Some(at(300))),
                applied: vec![],
            },
        ],
    );
    let page = store.ended(0, 1).expect("page");
    assert_eq!(
        page.records
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["s3"]
    );
    assert!(page.more);
    assert_eq!(page.total, 2);
    let page = store.ended(1, 5).expect("page");
    assert_eq!(
        page.records
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["s2"]
    );
    assert!(!page.more);
    assert_eq!(page.records[0].ended_at, Some(at(200)));
    assert_eq!(store.recover().expect("recover").sessions.len(), 1);

    // The purge removes what ended before its time, and journal entries
    // nobody took before its other time.
    write(&rt, store, vec![Write::Journal(vec![entry(4, None)])]);
    write(
        &rt,
        store,
        vec![Write::Purge {
            ended_before: at(250),
            journal_before: at(10),
        }],
    );
    assert_eq!(store.session("s2").expect("read"), None);
    assert!(store.session("s3").expect("read").is_some());
    assert!(store.recover().expect("recover").journal.is_empty());
    rt.block_on(store.flush()).expect("flush");
}

#[test]
fn sqlite_and_postgres_answer_the_same_writes_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(&dir.path().join("callflow.db")).expect("sqlite");
    conformance(&sqlite);
    if !require::postgres() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = rt.block_on(fresh_schema("conformance"));
    let pg = PostgresStore::open(&url).expect("postgres");
    assert_eq!(pg.kind(), "postgres");
    assert!(pg.durable() && pg.ready());
    conformance(&pg);
}

#[test]
fn a_newer_schema_is_refused_and_left_alone_and_instances_migrate_once() {
    if !require::postgres() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = rt.block_on(fresh_schema("migrations"));
    // Four instances starting together: one migrates, the others find it done.
    let opened: Vec<Result<PostgresStore, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| PostgresStore::open(&url)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect()
    });
    for o in &opened {
        assert!(o.is_ok(), "{:?}", o.as_ref().err());
    }
    drop(opened);
    let version = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        let rows = client
            .query("SELECT version FROM callflow_schema", &[])
            .await
            .expect("version");
        rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>()
    });
    assert_eq!(version, vec![MIGRATIONS.len() as i32]);

    let newer = MIGRATIONS.len() + 1;
    rt.block_on(execute(
        &url,
        &format!(
            "UPDATE callflow_schema SET version = {newer}; \
             INSERT INTO sessions VALUES ('kept', 'f', 'v', true, '{{}}', now(), NULL)"
        ),
    ));
    let refused = PostgresStore::open(&url)
        .err()
        .expect("a newer schema is refused");
    let message = refused.to_string();
    assert!(matches!(refused, StoreError::Open(_)));
    assert!(
        message.contains(&format!(
            "schema version {newer}, written by a newer callflow"
        )) && message.contains("left as it is"),
        "{message}"
    );
    assert!(
        !message.contains("password"),
        "the URL is shown without a password: {message}"
    );
    rt.block_on(execute(
        &url,
        &format!("UPDATE callflow_schema SET version = {}", MIGRATIONS.len()),
    ));
    let store = PostgresStore::open(&url).expect("reopened");
    assert!(store.session("kept").expect("read").is_some());
}

#[test]
fn a_store_url_that_does_not_answer_or_parse_is_refused_with_a_clear_message() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let url = format!("postgres://callflow:s3cret@127.0.0.1:{port}/test");
    let e = PostgresStore::open(&url).err().expect("refused");
    let message = e.to_string();
    assert!(message.starts_with("cannot open the store"), "{message}");
    assert!(
        !message.contains("s3cret"),
        "no password in the message: {message}"
    );
    let e = PostgresStore::open("postgres://127.0.0.1/test?no_such_option=1")
        .err()
        .expect("refused");
    assert!(e.to_string().contains("is not valid"), "{e}");
}

fn upstream() -> std::net::SocketAddr {
    let url = url::Url::parse(&require::postgres_url()).expect("url");
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), url.port().unwrap_or(5432)))
        .expect("address")
        .next()
        .expect("address")
}

/// `url` (a test schema's) through `proxy`.
fn through(url: &str, proxy: &Proxy) -> String {
    let mut u = url::Url::parse(url).expect("url");
    u.set_port(Some(proxy.addr().port())).expect("port");
    u.set_host(Some("127.0.0.1")).expect("host");
    u.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_not_ready_while_cut_off_and_recovers_by_itself() {
    if !require::postgres() {
        return;
    }
    let url = fresh_schema("partition").await;
    let proxy = Proxy::start(upstream()).await;
    let url = through(&url, &proxy);
    let store = tokio::task::spawn_blocking(move || PostgresStore::open(&url))
        .await
        .expect("join")
        .expect("open");
    let store = std::sync::Arc::new(store);
    store
        .write(vec![Write::Journal(vec![entry(1, None)])])
        .await
        .expect("written while up");

    proxy.cut();
    eventually(Duration::from_secs(20), || async {
        (!store.ready()).then_some(())
    })
    .await
    .expect("not ready while the server is cut off");
    let refused = store
        .write(vec![Write::Journal(vec![entry(2, None)])])
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Failed(m)) if m.contains("unreachable")),
        "{refused:?}"
    );

    proxy.restore();
    eventually(Duration::from_secs(20), || async {
        store.ready().then_some(())
    })
    .await
    .expect("ready again once the server answers");
    store
        .write(vec![Write::Journal(vec![entry(3, None)])])
        .await
        .expect("written once back");
    let reader = store.clone();
    let journal = tokio::task::spawn_blocking(move || reader.recover())
        .await
        .expect("join")
        .expect("recover")
        .journal;
    assert_eq!(
        journal.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 3],
        "what was acknowledged is there; what was refused is not"
    );
}

/// The durable-sessions test of a call in a menu (`kill -9`, SIGTERM,
/// restarts; the same requests, none twice), on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_a_menu_survives_kill_9_and_sigterm_on_postgres() {
    if !require::postgres() {
        return;
    }
    let url = fresh_schema("serve_menu").await;
    crate::store::menu_survives_kill_9_and_sigterm(&url).await;
}

/// `serve` on PostgreSQL through a link the test cuts: while cut,
/// `/readyz` is `503` and a new call's notification is answered `503`
/// (nothing acknowledged that is not stored, nothing run); once the link is
/// back, `/readyz` is `200` again and a new call runs, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_503_while_postgres_is_cut_off_and_resumes_by_itself() {
    use crate::store::{
        MENU_NUMBER, Serve, flows, free_port, menu_waiting, place, refused_while_unstored, sim,
    };
    if !require::postgres() {
        return;
    }
    callflow::graph::client::install_tls_provider();
    let url = fresh_schema("serve_cut").await;
    let proxy = Proxy::start(upstream()).await;
    let store = through(&url, &proxy);
    let sim = sim().await;
    let graph = sim.base_url().to_owned();
    let dir = tempfile::tempdir().expect("tempdir");
    let flows = flows(dir.path());
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/api/calls");
    let serve = Serve::start(&graph, port, &flows, &store).await;
    let readyz = || async {
        reqwest::get(format!("{}/readyz", serve.public))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(readyz().await, 200);

    proxy.cut();
    eventually(Duration::from_secs(20), || async {
        (readyz().await == 503).then_some(())
    })
    .await
    .expect("/readyz says not ready while the store is cut off");
    refused_while_unstored(&serve, &graph, &callback).await;

    proxy.restore();
    eventually(Duration::from_secs(20), || async {
        (readyz().await == 200).then_some(())
    })
    .await
    .expect("ready again once the store answers");
    let call = place(&graph, MENU_NUMBER, &callback).await;
    eventually(Duration::from_secs(60), || async {
        menu_waiting(&serve, &graph, &call).await.then_some(())
    })
    .await
    .expect("a call after the store returned runs");
    drop(serve);
    let _ = sim.shutdown().await;
}

/// Takes `per_taker` turns of each of `groups` from each store of
/// `stores`, every taker at once; the turns each group handed out.
async fn take_turns_together(
    stores: &[std::sync::Arc<dyn Store>],
    groups: &[&str],
    per_taker: usize,
) -> std::collections::HashMap<String, Vec<u64>> {
    let mut takers = tokio::task::JoinSet::new();
    for store in stores {
        for group in groups {
            for _ in 0..4 {
                let store = store.clone();
                let group = (*group).to_owned();
                takers.spawn(async move {
                    let mut got = Vec::new();
                    for _ in 0..per_taker {
                        got.push(store.take_turn(&group).await.expect("a turn"));
                    }
                    (group, got)
                });
            }
        }
    }
    let mut turns: std::collections::HashMap<String, Vec<u64>> = Default::default();
    while let Some(done) = takers.join_next().await {
        let (group, got) = done.expect("taker");
        turns.entry(group).or_default().extend(got);
    }
    for got in turns.values_mut() {
        got.sort_unstable();
    }
    turns
}

/// Each group handed out `0..n` once each: no turn twice, none skipped.
fn assert_every_turn_once(turns: &std::collections::HashMap<String, Vec<u64>>, n: u64) {
    for (group, got) in turns {
        assert_eq!(
            got,
            &(0..n).collect::<Vec<u64>>(),
            "{group}: every turn handed out exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_takers_never_get_the_same_turn_on_sqlite_and_postgres() {
    let groups = ["sales/team", "support/desk"];
    // SQLite: one process holds the file; 8 takers at once, then the file
    // opened again goes on from where the counters stood.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("callflow.db");
    let sqlite: std::sync::Arc<dyn Store> =
        std::sync::Arc::new(SqliteStore::open(&path).expect("sqlite"));
    let turns = take_turns_together(std::slice::from_ref(&sqlite), &groups, 25).await;
    assert_every_turn_once(&turns, 100);
    drop(sqlite);
    // The writer thread lets go of the file once it sees the store dropped.
    let reopened = eventually(Duration::from_secs(10), || {
        let path = path.clone();
        async move { SqliteStore::open(&path).ok() }
    })
    .await
    .expect("the file opens again once the first store is closed");
    assert_eq!(reopened.take_turn("sales/team").await.expect("turn"), 100);
    assert_eq!(reopened.take_turn("new/group").await.expect("turn"), 0);
    drop(reopened);

    // PostgreSQL: two instances on one database, 8 takers each at once.
    if !require::postgres() {
        return;
    }
    let url = fresh_schema("turns").await;
    let (a, b) = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            (
                PostgresStore::open(&url).expect("instance a"),
                PostgresStore::open(&url).expect("instance b"),
            )
        })
        .await
        .expect("open")
    };
    let stores: Vec<std::sync::Arc<dyn Store>> =
        vec![std::sync::Arc::new(a), std::sync::Arc::new(b)];
    let turns = take_turns_together(&stores, &groups, 25).await;
    assert_every_turn_once(&turns, 200);
    drop(stores);
    let later = tokio::task::spawn_blocking(move || PostgresStore::open(&url).expect("instance c"))
        .await
        .expect("open");
    assert_eq!(later.take_turn("support/desk").await.expect("turn"), 200);
}

/// How many server connections have `application_name` `name`.
async fn connections_named(name: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(&require::postgres_url(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    let task = tokio::spawn(conn);
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .await
        .expect("pg_stat_activity")
        .get(0);
    drop(client);
    let _ = task.await;
    n
}

/// A store dropped in a process that goes on (a test, an embedder) closes
/// its connections: none is left holding a server slot.
#[test]
fn a_dropped_store_closes_its_connections() {
    if !require::postgres() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let name = format!("callflow_dropped_{}", std::process::id());
    let url = format!(
        "{}&application_name={name}",
        rt.block_on(fresh_schema("dropped"))
    );
    let store = PostgresStore::open(&url).expect("postgres");
    let at = Utc
        .with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
        .single()
        .expect("time");
    rt.block_on(store.write(vec![Write::Journal(vec![JournalEntry {
        seq: 1,
        event: "{}".into(),
        received_at: at,
        body: None,
    }])]))
    .expect("a write");
    let open = rt.block_on(connections_named(&name));
    assert!(open >= 1, "the open store holds connections: {open}");
    drop(store);
    let closed = rt.block_on(eventually(Duration::from_secs(20), || async {
        (connections_named(&name).await == 0).then_some(())
    }));
    assert!(
        closed.is_some(),
        "the dropped store's connections stay open: {}",
        rt.block_on(connections_named(&name))
    );
}
