//! Tests that need something the repository does not hold.
//!
//! On a clone of the repository alone, such a test returns at once, and
//! the run prints one notice per missing thing (on standard error, past
//! the test harness's capture, so that it shows in `cargo test`'s output).
//! When the environment variable `CALLFLOW_REQUIRE` names the thing (a
//! comma-separated list, or `all`), a missing one fails the test instead:
//! `.ci/run` sets it, so that CI runs them all.

use std::io::Write;
use std::sync::OnceLock;

/// Whether `CALLFLOW_REQUIRE` names `what` (or `all`).
fn required(what: &str) -> bool {
    std::env::var("CALLFLOW_REQUIRE").is_ok_and(|v| {
        v.split(',')
            .map(str::trim)
            .any(|item| item == what || item == "all")
    })
}

/// Whether `what` is there. `look` is run once per test run and gives
/// `Err(what is missing)` when it is not: then, if required, every test
/// that asks panics with it; if not, the notice is printed once and the
/// answer is `false`.
fn check(
    what: &'static str,
    cell: &OnceLock<Option<String>>,
    look: impl FnOnce() -> Result<(), String>,
) -> bool {
    let missing = cell.get_or_init(|| {
        let missing = look().err()?;
        if !required(what) {
            let _ = writeln!(
                std::io::stderr(),
                "\nnotice: skipping the tests that need {missing} \
                 (CALLFLOW_REQUIRE={what} makes them fail instead)\n"
            );
        }
        Some(missing)
    });
    match missing {
        None => true,
        Some(missing) if required(what) => {
            panic!("these tests need {missing}, and CALLFLOW_REQUIRE names `{what}`")
        }
        Some(_) => false,
    }
}

/// Whether Microsoft's reference pages are in `../shared/seeds` beside the crate.
pub fn seeds() -> bool {
    static CELL: OnceLock<Option<String>> = OnceLock::new();
    check("seeds", &CELL, || {
        let has_pages = super::seeds::seeds_dir()
            .read_dir()
            .is_ok_and(|mut entries| entries.any(|e| e.is_ok()));
        if has_pages {
            Ok(())
        } else {
            Err("Microsoft's reference pages (`../shared/seeds` beside the crate)".into())
        }
    })
}

/// The Chromium binary and its driver: `CALLFLOW_CHROMIUM` and
/// `CALLFLOW_CHROMEDRIVER`, else Debian's `/usr/bin/chromium` and
/// `/usr/bin/chromedriver` (`apt-get install chromium chromium-driver`).
pub fn chromium_paths() -> (std::path::PathBuf, std::path::PathBuf) {
    let pick = |var: &str, default: &str| {
        std::env::var_os(var).map_or_else(|| default.into(), std::path::PathBuf::from)
    };
    (
        pick("CALLFLOW_CHROMIUM", "/usr/bin/chromium"),
        pick("CALLFLOW_CHROMEDRIVER", "/usr/bin/chromedriver"),
    )
}

/// Whether headless Chromium and chromedriver are installed.
pub fn chromium() -> bool {
    static CELL: OnceLock<Option<String>> = OnceLock::new();
    check("chromium", &CELL, || {
        let (browser, driver) = chromium_paths();
        if browser.is_file() && driver.is_file() {
            Ok(())
        } else {
            Err(format!(
                "Chromium and chromedriver ({} and {}; `apt-get install chromium chromium-driver`)",
                browser.display(),
                driver.display()
            ))
        }
    })
}

/// Where axe-core's `axe.min.js` is: `CALLFLOW_AXE_JS`, else
/// `target/axe/node_modules/axe-core/axe.min.js` (what `.ci/run` installs
/// with `npm install --prefix target/axe axe-core@4`).
pub fn axe_path() -> std::path::PathBuf {
    std::env::var_os("CALLFLOW_AXE_JS").map_or_else(
        || {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/axe/node_modules/axe-core/axe.min.js")
        },
        std::path::PathBuf::from,
    )
}

/// Whether the accessibility checker axe-core is there (and Chromium).
pub fn axe() -> bool {
    static CELL: OnceLock<Option<String>> = OnceLock::new();
    chromium()
        && check("axe", &CELL, || {
            let path = axe_path();
            if path.is_file() {
                Ok(())
            } else {
                Err(format!(
                    "axe-core ({}; `npm install --prefix target/axe axe-core@4`)",
                    path.display()
                ))
            }
        })
}

/// Where the PostgreSQL tests connect: `CALLFLOW_TEST_POSTGRES`, else the
/// development and CI machines' server (`postgres://postgres@127.0.0.1:5432/test`).
pub fn postgres_url() -> String {
    std::env::var("CALLFLOW_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether a PostgreSQL server answers at [`postgres_url`].
pub fn postgres() -> bool {
    static CELL: OnceLock<Option<String>> = OnceLock::new();
    check("postgres", &CELL, || {
        let url = postgres_url();
        let missing = || {
            format!(
                "a PostgreSQL server at {url} (CALLFLOW_TEST_POSTGRES; `pg_ctlcluster \
                 --skip-systemctl-redirect $(ls /etc/postgresql) main start`)"
            )
        };
        let parsed = url::Url::parse(&url).map_err(|_| missing())?;
        let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
        let port = parsed.port().unwrap_or(5432);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(missing)?;
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
            .map(drop)
            .map_err(|_| missing())
    })
}
