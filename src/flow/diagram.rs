//! Flow diagrams (Mermaid and Graphviz dot): a node per step, an edge per outcome.
