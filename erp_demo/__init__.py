"""An example ERP (products, customers, sales orders) and its ``seed_demo`` command."""
