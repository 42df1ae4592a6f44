fn main() { mcp_broker_app::main() }
