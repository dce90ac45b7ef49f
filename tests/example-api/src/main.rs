//! `example-api`: serves the example CRM API on 127.0.0.1 for the plugin guide.

use clap::Parser;
use rapport_example_api::{ExampleApi, contacts};

/// Serve the example CRM API (GET /v1/contacts) that plugins/example syncs from.
#[derive(Debug, Parser)]
#[command(name = "example-api")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8089)]
    port: u16,
    /// How many contacts to serve.
    #[arg(long, default_value_t = 1000)]
    contacts: usize,
    /// The bearer token clients must send.
    #[arg(long, default_value = "example-token")]
    token: String,
    /// Answer every n-th request with 429 and Retry-After: 1 (0: never).
    #[arg(long, default_value_t = 0)]
    throttle_every: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let api = match ExampleApi::start_on(([127, 0, 0, 1], args.port).into(), &args.token) {
        Ok(api) => api,
        Err(err) => {
            eprintln!("error: cannot serve on 127.0.0.1:{}: {err} (choose another --port)", args.port);
            return std::process::ExitCode::FAILURE;
        }
    };
    api.upsert(contacts(args.contacts, 4));
    api.throttle_every(args.throttle_every);
    println!("example API serving {} contacts on {} (token {})", args.contacts, api.url(), args.token);
    // Serve until the process is stopped (Ctrl-C).
    loop {
        std::thread::park();
    }
}
