"""Datasets: the synthetic Oxford-IIIT Pet generator, the layout loader, tf.data pipelines, sklearn digits."""
