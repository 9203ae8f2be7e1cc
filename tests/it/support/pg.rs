//! A schema of its own for each PostgreSQL test, on the server
//! [`super::require::postgres_url`] names, so that tests run in parallel.

/// Drops and creates schema `name` (a fresh one per test) and returns the
/// store URL whose `search_path` is that schema.
pub async fn fresh_schema(name: &str) -> String {
    let base = super::require::postgres_url();
    let name = format!("t_{}_{}", name, std::process::id());
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))
        .await
        .expect("a fresh schema");
    drop(client);
    let _ = task.await;
    with_search_path(&base, &name)
}

/// `url` with `options=-csearch_path=SCHEMA` (percent-encoded).
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// Runs `sql` on the server at `url` (a test's schema).
pub async fn execute(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.expect("sql");
    drop(client);
    let _ = task.await;
}
