"""tfdphpe.training"""
